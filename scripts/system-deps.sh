#!/usr/bin/env bash
# System packages the browser and load-balancer tests use: Debian's chromium and haproxy.
# In CI (CI=true, as root) they are installed when missing; on a developer machine this
# only says how to install them, and the tests that need them skip with that reason.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages for the tests: ${missing[*]}"
  # Another install may hold the package lock (unattended upgrades, a second session):
  # wait for it, up to ten minutes, instead of failing at once.
  lock_wait=(-o DPkg::Lock::Timeout=600)
  DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" install -y -qq "${missing[@]}" >/dev/null
else
  echo "Note: ${missing[*]} not installed; the tests that need them will skip."
  echo "      Install with: sudo apt-get install -y ${missing[*]}"
fi
