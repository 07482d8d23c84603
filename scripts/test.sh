#!/usr/bin/env bash
# Runs the whole suite against real servers: the embedded PostgreSQL (the tests start it) and
# Debian's PostgreSQL on 127.0.0.1 over TCP with a password (started here, removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/cryptocast-pg.XXXXXX)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$work"
printf '%s\n' "$password" > "$work/pwfile"
[ "$(id -u)" = 0 ] && chown postgres "$work/pwfile"

cleanup() {
  as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_postgres "$pg_bin/initdb" -D "$work/data" -U cryptocast --auth=scram-sha-256 --pwfile="$work/pwfile" >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=off" start >/dev/null
export CRYPTOCAST_TEST_DATABASE_URL="postgresql://cryptocast:${password}@127.0.0.1:${port}/postgres"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (TCP, password)"

.venv/bin/pytest --durations=25 "$@"  # the slowest tests, for keeping CI within its time
