#!/bin/sh
# Second stage of the kernel lab's guest (PID 1 after switch_root, run by the host's /bin/sh on the
# overlay root). Prepares the target stack, runs the command, reports its exit code to the host
# through the run share and powers off.
#
# /run/tcmu-lab (the per-run share) holds: env.sh (set by tools/lab/run), command.sh, and receives
# stdout, stderr, exit-code.
share=/run/tcmu-lab
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=/dev/null
. "$share/env.sh"

# Progress marks in the kernel log (visible with --console and TCMU_LAB_KERNEL_ARGS=loglevel=7).
mark() { echo "tcmu-lab: $*" >/dev/kmsg 2>/dev/null; }
power_off() {
  sync
  /bin/busybox poweroff -f 2>/dev/null
  echo o >/proc/sysrq-trigger
  sleep 10
}
setup_failed() {
  echo "tools/lab guest setup: $*" >>"$share/stderr"
  echo 125 >"$share/exit-code"
  power_off
}

# The unpacked modules, bound where the /tmp tmpfs below cannot hide them (the cache may be in /tmp).
mkdir -p /run/tcmu-lab-modules
mount --bind "$LAB_MODULES" /run/tcmu-lab-modules || setup_failed "the modules folder $LAB_MODULES is not visible"

# Filesystems. /tmp is a fresh tmpfs unless the caller's folder or the repository lives under /tmp
# (then the overlay keeps it visible and writable).
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null || { mkdir -p /dev/pts && mount -t devpts devpts /dev/pts; }
mkdir -p /dev/shm && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
case "$LAB_CWD/:$LAB_RESULTS/" in
  /tmp/* | *:/tmp/*) ;;
  *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t configfs configfs /sys/kernel/config 2>/dev/null || true
mark "filesystems ready"

# The results folder, read-write, at the host's path.
if [ -n "$LAB_RESULTS" ]; then
  if ! mkdir -p "$LAB_RESULTS" ||
    ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none results "$LAB_RESULTS"; then
    setup_failed "cannot mount the results folder at $LAB_RESULTS"
  fi
fi

# Modules: /lib/modules/<version> → the unpacked kernel package in the cache (seen through 9p).
mkdir -p /lib/modules
ln -sfn /run/tcmu-lab-modules "/lib/modules/$(uname -r)"
# Persistent reservations keep their files here; target_core_mod looks for the folder at load time.
mkdir -p /etc/target/pr /var/target/pr
modprobe -a configfs target_core_user tcm_loop sd_mod sg || setup_failed "modprobe of the target stack failed"
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
[ -d /sys/kernel/config/target ] || setup_failed "configfs has no target/ folder"
mark "target stack loaded"

/bin/busybox ip link set lo up
/bin/busybox hostname tcmu-lab

# The command, with a clean environment close to the caller's.
mark "running the command"
: >"$share/started"
cd "$LAB_CWD" 2>/dev/null || setup_failed "the working folder $LAB_CWD is not visible in the guest"
env -i PATH="$LAB_PATH" HOME=/root USER=root LOGNAME=root LANG="${LAB_LANG:-C.UTF-8}" TERM=dumb \
  TCMU_LAB=1 TCMU_LAB_KERNEL="$(uname -r)" \
  /bin/bash "$share/command.sh" </dev/null >"$share/stdout" 2>"$share/stderr"
code=$?
mark "the command exited with $code"
echo "$code" >"$share/exit-code.tmp" && mv "$share/exit-code.tmp" "$share/exit-code"
power_off
