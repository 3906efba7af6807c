#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: bootstrap (pnpm, packages, build), lint,
# types, publint, unit tests on the host, kernel tests inside the kernel lab, S3 tests against a local
# Ceph RGW. Ends with the line `N passed, N failed, N skipped`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results="$root/.results/test"
rm -rf "$results"
mkdir -p "$results"

# shellcheck source=tools/bootstrap.sh
if ! (source tools/bootstrap.sh); then
  printf 'bootstrap\tfail\t0\n' >>"$results/steps.tsv"
  node tools/summary.mjs "$results"
  exit 1
fi

step() {
  local name=$1
  shift
  local start=$SECONDS
  echo "=== $name: $*"
  if "$@"; then
    printf '%s\tok\t%s\n' "$name" $((SECONDS - start)) >>"$results/steps.tsv"
  else
    printf '%s\tfail\t%s\n' "$name" $((SECONDS - start)) >>"$results/steps.tsv"
  fi
}

step lint pnpm -s lint
step typecheck pnpm -s typecheck --output-logs=errors-only
step publint pnpm -s publint --output-logs=errors-only
step attw pnpm -s attw --output-logs=errors-only
step api-docs pnpm -s docs:api

# Extra environments (the local S3 server) are started here when their scripts exist.
if [ -x tools/s3/rgw ]; then
  step s3-server tools/s3/rgw start
  eval "$(tools/s3/rgw env)"
fi

echo "=== unit tests (host)"
TCMU_TEST_MODE=host pnpm -s vitest run --reporter=default --reporter=json \
  --outputFile.json="$results/host.json" || true
[ -f "$results/host.json" ] || printf 'host tests report\tfail\t0\n' >>"$results/steps.tsv"

if [ -x tools/lab/run ]; then
  step lab-setup tools/lab/setup
  echo "=== kernel tests (in the lab)"
  # vitest through node directly: pnpm's own start-up costs seconds under emulation.
  # libiscsi's SCSI family runs on memory, file and S3 disks at once (docs/conformance.md);
  # TCMU_CONFORMANCE=0 leaves it out; TCMU_RESTART_S3=0 leaves out the S3 restart cases (docs/restart.md).
  kernel_timeout=3000
  [ "${TCMU_CONFORMANCE:-}" = 0 ] && kernel_timeout=1500
  # 3 GiB: the S3 cases run a Ceph RGW inside the guest beside the served disks.
  tools/lab/run --timeout "${TCMU_KERNEL_TESTS_TIMEOUT:-$kernel_timeout}" --memory "${TCMU_LAB_MEMORY:-3072}" \
    env TCMU_TEST_MODE=kernel \
    TCMU_CONFORMANCE="${TCMU_CONFORMANCE:-}" TCMU_RESTART_S3="${TCMU_RESTART_S3:-}" \
    "$(command -v node)" "$root/node_modules/vitest/vitest.mjs" run \
    --reporter=default --reporter=json --outputFile.json="$results/kernel.json" || true
  [ -f "$results/kernel.json" ] || printf 'kernel tests report\tfail\t0\n' >>"$results/steps.tsv"
fi

[ -x tools/s3/rgw ] && tools/s3/rgw stop >/dev/null 2>&1
echo "=== summary (${SECONDS}s in all)"
node tools/summary.mjs "$results"
