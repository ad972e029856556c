#!/usr/bin/env bash
# Runs a command while every core is kept busy by another process, as a newcomer's laptop
# or a shared CI machine would be: the developers' check that no test depends on an idle
# machine (docs/reliability.md). Not part of CI. Usage: scripts/under-load.sh make test
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
hogs=()
for _ in $(seq "$(nproc)"); do
  nice -n 0 python3 -c 'while True: pass' &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
"$@"
