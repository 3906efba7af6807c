#!/bin/bash
# Reserve6.Logout probe (docs/conformance.md): serves a memory disk, exports it over LIO iSCSI on
# 127.0.0.1, runs libiscsi's SCSI.Reserve6.Logout N times (default 12) and prints, for each failure,
# the kernel's log with dynamic debug on for session deregistration and SPC-2 reservations.
# HOG=K adds K busy loops competing for the guest's CPUs. Run it in the kernel lab after pnpm build:
#   tools/lab/run --timeout 900 -- env N=12 HOG=3 bash docs/reserve6-probe.sh
set -u
cd "$(dirname "$0")/.."
N=${N:-12}
hogs=()
for _ in $(seq 1 "${HOG:-0}"); do
  (while :; do :; done) &
  hogs+=($!)
done
modprobe iscsi_target_mod
mount -t debugfs none /sys/kernel/debug 2>/dev/null
for f in transport_deregister_session target_scsi2_reservation_reserve target_scsi2_reservation_release; do
  echo "func $f +p" >/sys/kernel/debug/dynamic_debug/control
done
out=$(mktemp)
node packages/cli/dist/cli.js serve memory: --size 64M --name r6 --json >"$out" 2>&1 &
server=$!
for _ in $(seq 1 300); do grep -q '"ready"' "$out" && break; sleep 1; done
backstore=$(ls -d /sys/kernel/config/target/core/user_*/r6 | head -1)
echo "backstore $backstore pgr_support=$(cat "$backstore/attrib/pgr_support")"
iqn=iqn.2003-01.org.linux-iscsi.tcmu:r6
tpg=/sys/kernel/config/target/iscsi/$iqn/tpgt_1
mkdir -p "$tpg/lun/lun_0"
ln -s "$backstore" "$tpg/lun/lun_0/r6"
mkdir "$tpg/np/127.0.0.1:3260"
echo 0 >"$tpg/attrib/authentication"
echo 1 >"$tpg/attrib/generate_node_acls"
echo 0 >"$tpg/attrib/demo_mode_write_protect"
echo 1 >"$tpg/enable"
fails=0
for i in $(seq 1 "$N"); do
  dmesg -C
  result=$(iscsi-test-cu --dataloss --normal --test=SCSI.Reserve6.Logout "iscsi://127.0.0.1:3260/$iqn/0" 2>&1)
  if grep -q "had failures" <<<"$result"; then
    fails=$((fails + 1))
    echo "run $i: FAILED"
    dmesg | tail -20
  else
    echo "run $i: passed"
  fi
done
echo "Reserve6.Logout: $fails of $N failed (${HOG:-0} busy loops)"
echo "--- the kernel's log of the last run"
dmesg | tail -12
[ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}"
echo 0 >"$tpg/enable"
rmdir "$tpg/np/127.0.0.1:3260"
rm "$tpg/lun/lun_0/r6"
rmdir "$tpg/lun/lun_0" "$tpg" "/sys/kernel/config/target/iscsi/$iqn"
kill -TERM "$server"
wait "$server"
echo "serve exit $?"
