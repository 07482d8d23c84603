#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing (idempotent, quiet when done).
#   postgresql: the TCP server the suite runs against beside the embedded one
#   chromium, chromium-driver: the real browser the dashboard tests drive (Playwright)
#   redis-server: the GCS store of the Ray head in the GCS fault-tolerance tests (tests/k8s)
#   wrk: the serving benchmark's load generator (C, so it leaves the 2 cores to the server)
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]} — install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
