#!/usr/bin/env bash
# Builds the peer bench:lab compares against: tcmu-runner's `file` handler. Debian's tcmu-runner
# ships no handler_file.so, so, as a user would, this fetches Debian's tcmu source package
# (adding a deb-src entry for the Debian mirror already configured) and compiles file_example.c
# against the headers in that source. The handler is loaded by the installed tcmu-runner, which
# provides the symbols it uses. Idempotent; the source stays in the cache, never in the repository.
# Usage: tools/bench/setup-peers.sh   (prints the handler folder; env TCMU_BENCH_CACHE, default
# /var/cache/tcmu-bench). Needs root (apt-get), tcmu-runner, gcc.
set -euo pipefail
cache=${TCMU_BENCH_CACHE:-/var/cache/tcmu-bench}
handler=$cache/handler_file.so
if [ -s "$handler" ]; then
  echo "$cache"
  exit 0
fi
say() { echo "setup-peers: $*" >&2; }
command -v tcmu-runner >/dev/null || { say "tcmu-runner is not installed (tools/lab/setup installs it)"; exit 1; }
command -v gcc >/dev/null || { say "gcc is missing: apt-get install gcc"; exit 1; }
mkdir -p "$cache"
cd "$cache"
if ! ls tcmu_*.dsc >/dev/null 2>&1; then
  sources=/etc/apt/sources.list.d/tcmu-bench-src.sources
  if ! apt-get source --download-only tcmu >/dev/null 2>&1; then
    # The mirror and suite of the configured Debian sources, as a deb-src entry.
    # (a fresh Debian 12 has only sources.list.d/debian.sources: grep's exit 2 for the missing
    # sources.list must not end the script under pipefail)
    uri=$({ grep -rhoE '^(URIs:|deb) *\[?[^]]*\]? *https?://[^ ]*debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } |
      grep -oE 'https?://[^ ]*' | grep -v security | head -n 1 || true)
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    [ -n "$uri" ] && [ -n "$suite" ] || { say "cannot find the configured Debian mirror"; exit 1; }
    say "adding deb-src $uri $suite main ($sources)"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" "$suite" >"$sources"
    apt-get update -qq -o Dir::Etc::sourcelist="$sources" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >&2
    apt-get source --download-only tcmu >&2
  fi
fi
rm -rf src
if command -v dpkg-source >/dev/null; then dpkg-source -x tcmu_*.dsc src >/dev/null
else mkdir src && tar xJf tcmu_*.orig.tar.xz -C src --strip-components=1; fi
# As CMakeLists.txt builds handler_file: file_example.c alone, with ccan/ on the include path.
gcc -shared -fPIC -O2 -Wall -Isrc -Isrc/ccan src/file_example.c -o "$handler.tmp"
mv "$handler.tmp" "$handler"
say "built $handler"
echo "$cache"
