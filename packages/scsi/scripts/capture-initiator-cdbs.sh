#!/bin/sh
# Capture the CDBs that the Linux SCSI midlayer/sd and sg3_utils really send, from the kernel's
# scsi:scsi_dispatch_cmd_start tracepoint, against an in-kernel ramdisk LUN on tcm_loop.
# Runs inside the kernel lab (needs root, configfs, tcm_loop, tracefs):
#   tools/lab/run -- sh packages/scsi/scripts/capture-initiator-cdbs.sh .results/scsi-capture
# Writes OUT/trace.txt (one "label | raw CDB hex" line per command), OUT/tools.log and OUT/responses.log
# (LIO's own response data in hex).
set -u
OUT=${1:-.results/scsi-capture}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T=/sys/kernel/tracing
[ -d "$T/events" ] || mount -t tracefs nodev "$T" || { echo "no tracefs" >&2; exit 1; }
C=/sys/kernel/config/target
set -e
mkdir -p $C/core/rd_mcp_0/cap0
echo rd_pages=16384 > $C/core/rd_mcp_0/cap0/control   # 64 MiB
echo 1 > $C/core/rd_mcp_0/cap0/enable
echo 1 > $C/core/rd_mcp_0/cap0/attrib/emulate_tpu 2>/dev/null || true
echo 1 > $C/core/rd_mcp_0/cap0/attrib/emulate_tpws 2>/dev/null || true
WWN=naa.50014050c0ffee01
mkdir -p $C/loopback/$WWN/tpgt_1
echo naa.50014050c0ffee02 > $C/loopback/$WWN/tpgt_1/nexus
set +e

: > $T/trace
echo 1 > $T/events/scsi/scsi_dispatch_cmd_start/enable
mark() { echo "MARK $1" > $T/trace_marker; }

ls $T/events/scsi > "$OUT/events.txt" 2>&1
mark linux-probe
# Linking the LUN makes the kernel probe it at once.
mkdir -p $C/loopback/$WWN/tpgt_1/lun/lun_0
ln -s $C/core/rd_mcp_0/cap0 $C/loopback/$WWN/tpgt_1/lun/lun_0/cap0 || echo "lun link failed" >> "$OUT/events.txt"
# Wait for sd to attach and finish its probe (TEST UNIT READY, READ CAPACITY, MODE SENSE, VPD pages).
DEV=
for i in $(seq 1 300); do
  for d in /sys/class/scsi_disk/*/device/block/*; do [ -e "$d" ] && DEV=/dev/$(basename "$d"); done
  [ -n "$DEV" ] && [ -b "$DEV" ] && break
  sleep 0.1
done
sleep 2
SG=$(ls /sys/class/scsi_generic | head -n 1)
SG=/dev/$SG
echo "disk $DEV generic $SG" > "$OUT/tools.log"
{ ls -l /sys/class/scsi_disk /sys/class/scsi_generic /sys/class/block; lsscsi; dmesg | tail -n 30; } >> "$OUT/tools.log" 2>&1
if [ -z "$DEV" ]; then cp $T/trace "$OUT/raw-trace.txt"; echo "no disk appeared" >&2; fi
run() { label=$1; shift; mark "$label"; echo "== $label: $*" >> "$OUT/tools.log"; "$@" >> "$OUT/tools.log" 2>&1; }
run sg_turs sg_turs "$DEV"
run sg_inq sg_inq "$DEV"
run sg_inq-p83 sg_inq -p 0x83 "$DEV"
run sg_vpd-lbpv sg_vpd -p lbpv "$DEV"
run sg_readcap sg_readcap "$DEV"
run sg_readcap-16 sg_readcap --16 "$DEV"
run sg_modes sg_modes "$DEV"
run sg_modes-6-p8 sg_modes -6 -p 8 "$DEV"
run sg_modes-all-sub sg_modes -a "$DEV"
run sdparm-wce sdparm --set WCE=1 "$DEV"
run sg_unmap sg_unmap --lba=0x1000 --num=8 "$DEV"
run sg_write_same sg_write_same --lba=0x1000 --num=16 --in=/dev/zero "$DEV"
run sg_write_same-16-unmap sg_write_same --16 --unmap --lba=0x1000 --num=16 "$DEV"
run sg_compare_and_write sg_compare_and_write --lba=0x20 --num=1 --in=/dev/zero --inc=/dev/zero "$DEV"
run sg_sync sg_sync "$DEV"
run sg_sync-16-immed sg_sync --16 --immed --lba=0x1000 --count=8 "$DEV"
run sg_verify sg_verify --lba=0x100 --count=8 "$DEV"
run sg_verify-16 sg_verify --16 --lba=0x100 --count=8 "$DEV"
run sg_get_lba_status sg_get_lba_status "$DEV"
run sg_opcodes sg_opcodes "$DEV"
run sg_opcodes-rctd sg_opcodes --rctd "$DEV"
run sg_opcodes-one sg_opcodes --opcode=0x93 "$DEV"
run sg_start sg_start --start "$DEV"
run sg_prevent sg_prevent --allow "$DEV"
run sg_requests sg_requests "$DEV"
run sg_requests-desc sg_requests --desc "$DEV"
run sg_luns sg_luns "$DEV"
run sg_rtpg sg_rtpg "$DEV"
run sg_persist sg_persist --in --read-keys "$DEV"
run dd-direct-read dd if="$DEV" of=/dev/null bs=4096 count=4 iflag=direct
run dd-direct-write dd if=/dev/zero of="$DEV" bs=65536 count=2 oflag=direct,dsync
run blkdiscard blkdiscard -o 0 -l 1048576 "$DEV"
run mkfs mkfs.ext4 -q -F "$DEV"
run fsync sh -c "mkdir -p /mnt/cap && mount $DEV /mnt/cap && echo hello > /mnt/cap/f && sync && umount /mnt/cap"
# The data LIO itself returns (hex), to compare our encoders' layouts with a real target's.
resp() { label=$1; shift; mark "$label"; echo "== $label: $*" >> "$OUT/responses.log"; "$@" >> "$OUT/responses.log" 2>&1; }
resp inquiry sg_inq -H "$DEV"
resp vpd-sv sg_vpd -p sv -H "$DEV"
resp vpd-sn sg_vpd -p sn -H "$DEV"
resp vpd-di sg_vpd -p di -H "$DEV"
resp vpd-bl sg_vpd -p bl -H "$DEV"
resp vpd-bdc sg_vpd -p bdc -H "$DEV"
resp vpd-lbpv sg_vpd -p lbpv -H "$DEV"
resp readcap10 sg_readcap -H "$DEV"
resp readcap16 sg_readcap --16 -H "$DEV"
resp modes6-all sg_modes -6 -p 0x3f -H "$DEV"
resp modes10-all sg_modes -p 0x3f -H "$DEV"
resp modes10-changeable sg_modes -p 0x3f -c 1 -H "$DEV"
resp modes10-default sg_modes -p 0x3f -c 2 -H "$DEV"
resp requests sg_requests -H "$DEV"
mark end
echo 0 > $T/events/scsi/scsi_dispatch_cmd_start/enable

# "label | raw hex" for every dispatched command, labelled by the last marker.
awk '
  /tracing_mark_write: MARK / { sub(/.*MARK /, ""); label = $0; next }
  /scsi_dispatch_cmd_start/ {
    if (match($0, /raw=[0-9a-f ]+\)/)) { raw = substr($0, RSTART + 4, RLENGTH - 5); print label " | " raw }
  }
' $T/trace > "$OUT/trace.txt"
cp $T/trace "$OUT/raw-trace.txt"
wc -l "$OUT/trace.txt"

# Tear down what was created.
for d in /sys/class/scsi_device/*/device/delete; do [ -e "$d" ] && echo 1 > "$d"; done
rmdir $C/loopback/$WWN/tpgt_1/nexus 2>/dev/null
rm -f $C/loopback/$WWN/tpgt_1/lun/lun_0/cap0
rmdir $C/loopback/$WWN/tpgt_1/lun/lun_0 $C/loopback/$WWN/tpgt_1 $C/loopback/$WWN 2>/dev/null
rmdir $C/core/rd_mcp_0/cap0 $C/core/rd_mcp_0 2>/dev/null
exit 0
