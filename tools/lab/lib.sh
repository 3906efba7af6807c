# shellcheck shell=bash
# Shared by tools/lab/setup and tools/lab/run (sourced, not executed).

# The cache folder: $TCMU_LAB_CACHE, else /var/cache/tcmu-lab when /var/cache is writable (shared by
# every clone on the machine), else <repo>/.lab-cache.
lab_cache_dir() {
  local repo=$1
  if [ -n "${TCMU_LAB_CACHE:-}" ]; then
    echo "$TCMU_LAB_CACHE"
  elif [ -w /var/cache ] || [ -w /var/cache/tcmu-lab ]; then
    echo /var/cache/tcmu-lab
  else
    echo "$repo/.lab-cache"
  fi
}

# True when the busybox on the host is Debian's static build (the initramfs has no libc).
busybox_is_static() {
  [ -x /bin/busybox ] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'
}
