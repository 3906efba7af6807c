#!/usr/bin/env bash
# Runs INSIDE the kernel lab guest (started by tools/bench/lab.mjs through tools/lab/run).
# Serves four targets over identical 256 MiB images in the guest's tmpfs, then runs the fio jobs
# interleaved (job J on every target, round by round, before any target runs job J+1).
#   ours-memory  tcmu serve memory:            (packages/cli/dist/cli.js)
#   ours-file    tcmu serve file:/…/ours.img
#   runner-file  tcmu-runner + file_example.c's handler_file.so (built by tools/bench/setup-peers.sh)
#   fileio       LIO's in-kernel fileio backstore (no userspace round trip: the limit)
# Usage: lab-guest.sh OUT_DIR HANDLER_DIR ROUNDS SECONDS [JOB...]
# Writes OUT_DIR/<job>.<round>.<target>.json (fio), OUT_DIR/<same>.proc (server CPU ticks and
# context switches before/after, for ours), OUT_DIR/<same>.cpu (the guest's /proc/stat "cpu" line
# before/after: how busy both vCPUs were), OUT_DIR/summary.txt; exits non-zero if a target fails.
set -euo pipefail
out=$1
handler_dir=$2
rounds=$3
seconds=$4
shift 4
repo=$(pwd)
cfg=/sys/kernel/config/target
work=/tmp/bench
size_mb=256
mkdir -p "$out" "$work"
log() { echo "[bench $(date +%T)] $*" | tee -a "$out/summary.txt" >&2; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  # tcmu-runner does not always exit on SIGTERM with its device still configured.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Identical images: 256 MiB of the same pseudo-random bytes (fio reads real data, not holes).
head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$work/seed.img"
for name in ours runner fileio; do cp "$work/seed.img" "$work/$name.img"; done
rm "$work/seed.img"

# The sd device behind a tcm_loop target's LUN 0: from tpgt_1/address (H:C:T) to /sys/bus/scsi.
disk_of() {
  local address=$1 i
  for i in $(seq 1 100); do
    local block=(/sys/bus/scsi/devices/"$address":0/block/*)
    if [ -e "${block[0]}" ]; then
      echo "/dev/$(basename "${block[0]}")"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# A tcm_loop target over a backstore folder: prints /dev/sdX.
loop_target() {
  local backstore=$1 wwn=$2
  local tpgt=$cfg/loopback/$wwn/tpgt_1
  mkdir -p "$tpgt/lun/lun_0"
  echo "naa.$(printf '%012x' $((RANDOM * RANDOM)))" >"$tpgt/nexus"
  ln -s "$backstore" "$tpgt/lun/lun_0/$(basename "$backstore")"
  disk_of "$(cat "$tpgt/address")"
}

# Ours: `tcmu serve` in the background; its "ready NAME /dev/sdX" line says the disk is usable.
# $3: the checkout whose CLI serves (default this one; TCMU_BENCH_BASELINE adds a before/after).
# $4: extra node flags (TCMU_BENCH_NODE_FLAGS adds a flags-memory target to measure them).
# $5: environment assignments for this server only (TCMU_BENCH_BASELINE_ENV, for the base disks).
serve_ours() {
  local name=$1 spec=$2 checkout=${3:-$repo} flags=${4:-} environment=${5:-} i
  # shellcheck disable=SC2086
  env $environment node $flags "$checkout/packages/cli/dist/cli.js" serve "$spec" --size ${size_mb}M --name "$name" --log-level warn \
    >"$work/$name.out" 2>>"$out/$name.log" &
  pids+=($!)
  for i in $(seq 1 600); do
    if grep -q '^ready' "$work/$name.out"; then return 0; fi
    sleep 0.1
  done
  log "$name: no ready line"
  return 1
}
serve_ours bench-memory memory:
ours_memory_pid=${pids[-1]}
ours_memory_dev=$(awk '/^ready/ { print $3 }' "$work/bench-memory.out")
serve_ours bench-file "file:$work/ours.img"
ours_file_pid=${pids[-1]}
ours_file_dev=$(awk '/^ready/ { print $3 }' "$work/bench-file.out")

# tcmu-runner with the file handler built from Debian's tcmu source (file_example.c).
mkdir -p "$work/runner-log"
tcmu-runner --handler-path "$handler_dir" -l "$work/runner-log" >"$out/tcmu-runner.log" 2>&1 &
runner_pid=$!
pids+=("$runner_pid")
sleep 2
mkdir -p "$cfg/core/user_900/runner"
echo -n "dev_size=$((size_mb * 1024 * 1024)),dev_config=file/$work/runner.img,hw_block_size=512" \
  >"$cfg/core/user_900/runner/control"
echo 1 >"$cfg/core/user_900/runner/enable"
runner_dev=$(loop_target "$cfg/core/user_900/runner" naa.5001405000000900)

# LIO's fileio backstore (buffered, as targetcli's default write_back=True).
mkdir -p "$cfg/core/fileio_901/fileio"
echo -n "fd_dev_name=$work/fileio.img,fd_dev_size=$((size_mb * 1024 * 1024)),fd_buffered_io=1" \
  >"$cfg/core/fileio_901/fileio/control"
echo 1 >"$cfg/core/fileio_901/fileio/enable"
fileio_dev=$(loop_target "$cfg/core/fileio_901/fileio" naa.5001405000000901)

declare -A dev=([ours-memory]=$ours_memory_dev [ours-file]=$ours_file_dev [runner-file]=$runner_dev [fileio]=$fileio_dev)
declare -A pid_of=([ours-memory]=$ours_memory_pid [ours-file]=$ours_file_pid [runner-file]=$runner_pid)
targets=(ours-memory ours-file runner-file fileio)
servers=(ours-memory ours-file runner-file)
# Before/after in the same boot: the same disks served by another checkout's build (e.g. main).
if [ -n "${TCMU_BENCH_BASELINE:-}" ]; then
  cp "$work/runner.img" "$work/base.img"
  serve_ours base-memory memory: "$TCMU_BENCH_BASELINE" "" "${TCMU_BENCH_BASELINE_ENV:-}"
  pid_of[base-memory]=${pids[-1]}
  dev[base-memory]=$(awk '/^ready/ { print $3 }' "$work/base-memory.out")
  serve_ours base-file "file:$work/base.img" "$TCMU_BENCH_BASELINE" "" "${TCMU_BENCH_BASELINE_ENV:-}"
  pid_of[base-file]=${pids[-1]}
  dev[base-file]=$(awk '/^ready/ { print $3 }' "$work/base-file.out")
  [ -n "${TCMU_BENCH_BASELINE_ENV:-}" ] && log "base-memory, base-file: with $TCMU_BENCH_BASELINE_ENV"
  targets=(ours-memory base-memory ours-file base-file runner-file fileio)
  servers=(ours-memory base-memory ours-file base-file runner-file)
fi
if [ -n "${TCMU_BENCH_NODE_FLAGS:-}" ]; then
  serve_ours flags-memory memory: "$repo" "$TCMU_BENCH_NODE_FLAGS"
  pid_of[flags-memory]=${pids[-1]}
  dev[flags-memory]=$(awk '/^ready/ { print $3 }' "$work/flags-memory.out")
  targets=(flags-memory "${targets[@]}")
  servers=(flags-memory "${servers[@]}")
  log "flags-memory: node $TCMU_BENCH_NODE_FLAGS"
fi
for t in "${targets[@]}"; do log "$t: ${dev[$t]}"; done
for t in "${targets[@]}"; do echo "$t ${dev[$t]} ${pid_of[$t]:-}" >>"$out/targets.txt"; done

# CPU ticks (utime+stime), context switches (all threads) and system ticks (stime: the kernel's
# work in the process's system calls) of a process: "ticks switches systemticks".
proc_sample() {
  local pid=$1 stat
  read -r -a stat <"/proc/$pid/stat"
  echo "$((stat[13] + stat[14])) $(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' /proc/"$pid"/task/*/status) ${stat[14]}"
}

declare -A job_args=(
  [randread-4k-qd1]="--rw=randread --bs=4k --iodepth=1"
  [randread-4k-qd16]="--rw=randread --bs=4k --iodepth=16"
  [randread-4k-qd32]="--rw=randread --bs=4k --iodepth=32"
  [randwrite-4k-qd16]="--rw=randwrite --bs=4k --iodepth=16"
  [randrw-64k-qd8]="--rw=randrw --rwmixread=70 --bs=64k --iodepth=8"
  [read-1m-qd4]="--rw=read --bs=1m --iodepth=4"
  [write-1m-qd4]="--rw=write --bs=1m --iodepth=4"
)
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(randread-4k-qd1 randread-4k-qd16 randread-4k-qd32 randwrite-4k-qd16 randrw-64k-qd8 read-1m-qd4 write-1m-qd4)

for job in "${jobs[@]}"; do
  for round in $(seq 1 "$rounds"); do
    for t in "${targets[@]}"; do
      base="$out/$job.$round.$t"
      pid=${pid_of[$t]:-}
      [ -z "$pid" ] || proc_sample "$pid" >"$base.proc"
      head -1 /proc/stat >"$base.cpu"
      # shellcheck disable=SC2086
      fio --name="$job" --filename="${dev[$t]}" ${job_args[$job]} --direct=1 --ioengine=libaio \
        --time_based --runtime="$seconds" --size=${size_mb}M --randseed=1234 --norandommap \
        --group_reporting --output-format=json --output="$base.json" >/dev/null 2>>"$out/fio.log" ||
        log "fio $job round $round on $t failed"
      head -1 /proc/stat >>"$base.cpu"
      [ -z "$pid" ] || proc_sample "$pid" >>"$base.proc"
    done
  done
  log "done: $job"
done

# Idle: CPU ticks of each server over 5 s with no I/O (must stay under 1%).
for t in "${servers[@]}"; do
  before=$(proc_sample "${pid_of[$t]}")
  sleep 5
  after=$(proc_sample "${pid_of[$t]}")
  echo "$t $before $after" >>"$out/idle.txt"
done
for t in "${servers[@]}"; do
  echo "$t $(awk '/VmHWM/ { print $2 }' "/proc/${pid_of[$t]}/status")" >>"$out/peak-rss-kib.txt"
done
echo "$(getconf CLK_TCK)" >"$out/clk-tck.txt"

# Teardown. The peers' configfs entries are removed while tcmu-runner still runs (removing a user
# device sends a netlink request the daemon must answer; without it the removal and the guest's
# power-off hang). Ours remove their own on SIGTERM.
unloop() {
  local tpgt=$cfg/loopback/$1/tpgt_1
  rm -f "$tpgt"/lun/lun_0/* 2>/dev/null || true
  rmdir "$tpgt/lun/lun_0" 2>/dev/null || true
  echo NULL >"$tpgt/nexus" 2>/dev/null || true
  rmdir "$tpgt" "$cfg/loopback/$1" 2>/dev/null || true
}
unloop naa.5001405000000900
unloop naa.5001405000000901
rmdir "$cfg/core/user_900/runner" "$cfg/core/user_900" "$cfg/core/fileio_901/fileio" "$cfg/core/fileio_901" 2>/dev/null ||
  log "could not remove the peers' configfs entries"
kill -TERM "$runner_pid" 2>/dev/null || true
ours_pids=()
for t in "${servers[@]}"; do [ "$t" = runner-file ] || ours_pids+=("${pid_of[$t]}"); done
kill -TERM "${ours_pids[@]}"
wait "${ours_pids[@]}" 2>/dev/null || true
log "finished"
