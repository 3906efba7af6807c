#!/usr/bin/env bash
# Sourced by tools/test.sh and tools/demo.sh: makes a fresh machine (Debian 12, Node 20, root) ready to
# build the workspace. Installs pnpm when missing, installs the workspace's packages, builds every package.
# Idempotent: a second run does little.
set -euo pipefail
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1
PNPM_VERSION=10.34.9

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1; then
  log "Node.js is required (>= 20.11); install it first (Debian: apt-get install nodejs)"
  exit 1
fi
if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  log "installing pnpm $PNPM_VERSION (npm install -g)"
  npm install -g --no-fund --no-audit "pnpm@$PNPM_VERSION" >/dev/null
fi
log "installing workspace packages (pnpm install)"
pnpm install --frozen-lockfile --prefer-offline --reporter=silent
log "building packages (turbo run build)"
pnpm -s build --output-logs=errors-only
