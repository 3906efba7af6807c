#!/bin/bash
# What the kernel does to a TCMU disk whose server dies, and what block_dev / reset_ring do.
# Run in the kernel lab from the repository root, after `pnpm build`:
#   tools/lab/run --timeout 900 bash docs/restart-probe.sh
# Prints one line per observation; the figures in docs/restart.md come from it.
set -u
cd "$(dirname "$0")/.."
CLI="node packages/cli/dist/cli.js"
NAME=probe0
IMG=/tmp/probe.img
LOG=/tmp/serve.log
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

start_serve() { # $@: extra flags; sets PID, DISK
  $CLI serve "file:$IMG" --size 64M --name $NAME --json "$@" >>"$LOG.out" 2>>"$LOG" &
  PID=$!
  local started; started=$(now)
  for _ in $(seq 1 600); do
    [ "$(grep -c '"event":"ready"' "$LOG.out")" -gt "$READY_SEEN" ] && break
    sleep 0.1
  done
  READY_SEEN=$(grep -c '"event":"ready"' "$LOG.out")
  line=$(grep '"event":"ready"' "$LOG.out" | sed -n "${READY_SEEN}p")
  DISK=$(sed -n 's/.*"device":"\([^"]*\)".*/\1/p' <<<"$line")
  echo "serve ready in $(since "$started") s: $line"
}
READY_SEEN=0
: >"$LOG.out"
DEV=/sys/kernel/config/target/core/user_0/$NAME

start_serve
SD=$(basename "$DISK")
echo "actions: $(ls $DEV/action | tr '\n' ' ')"
echo "attrib cmd_time_out=$(cat $DEV/attrib/cmd_time_out) qfull_time_out=$(cat $DEV/attrib/qfull_time_out)"
echo "scsi timeout=$(cat /sys/block/$SD/device/timeout) eh_timeout=$(cat /sys/block/$SD/device/eh_timeout)"
echo "write cmd_time_out while exported: $( (echo 10 > $DEV/attrib/cmd_time_out) 2>&1 || true)"

# block_dev on a live server: a command sent while blocked is answered BUSY and retried by the SCSI layer.
echo 1 > $DEV/action/block_dev
t=$(now); dd if=/dev/zero of="$DISK" bs=4k count=1 oflag=direct status=none & DD=$!
sleep 2; echo "block_dev=1: dd still running after 2 s: $(kill -0 $DD 2>/dev/null && echo yes || echo no)"
echo 0 > $DEV/action/block_dev
wait $DD; echo "block_dev=0: dd exit $? after $(since "$t") s"

# Dead server, no restart: how long does one direct write take to fail?
kill -9 $PID; wait $PID 2>/dev/null
t=$(now); dd if=/dev/zero of="$DISK" bs=4k count=1 oflag=direct status=none 2>/tmp/dd.err
echo "dead server, one direct write: exit $? after $(since "$t") s: $(tr '\n' ' ' </tmp/dd.err)"
dmesg | grep -iE "sd |tcmu|abort|timing out|result" | tail -6 | sed 's/^/  dmesg: /'

# Restart: take-over.
t=$(now); start_serve; echo "take-over took $(since "$t") s (same disk: $DISK)"
t=$(now); dd if=/dev/zero of="$DISK" bs=4k count=1 oflag=direct status=none; echo "after take-over, write: exit $? in $(since "$t") s"

# A write in flight while the server dies, restart after 3 s.
dd if=/dev/urandom of=/tmp/pattern bs=1M count=16 status=none
t=$(now)
(dd if=/tmp/pattern of="$DISK" bs=1M count=16 oflag=direct,sync status=none; echo "in-flight writer: exit $? after $(since "$t") s") &
W=$!
sleep 0.5; kill -9 $PID; wait $PID 2>/dev/null
sleep 3; start_serve
wait $W
cmp <(head -c 16M "$DISK") /tmp/pattern && echo "data read back identical"

# reset_ring on a live ring with nothing in flight, then I/O still works.
echo 1 > $DEV/action/reset_ring; echo "reset_ring=1 on an idle ring: ok"
dd if=/dev/zero of="$DISK" bs=4k count=1 oflag=direct status=none; echo "write after reset_ring: exit $?"

kill -TERM $PID; wait $PID; echo "serve stopped: exit $?"
ls /sys/kernel/config/target/core | tr '\n' ' '; echo
