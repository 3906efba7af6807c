#!/usr/bin/env bash
# The demo: serve a disk from TypeScript, mkfs.ext4 it, mount it, write files, read them back, tear down.
# Runs in the host kernel when it has TCMU, otherwise inside the kernel lab. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/bootstrap.sh
source tools/bootstrap.sh
exec node packages/cli/dist/cli.js demo "$@"
