#!/usr/bin/env bash
# Start the local PostgreSQL (127.0.0.1:5432) if it is down: every Debian cluster that
# listens on port 5432 is started, then we wait until it accepts connections. The tests
# create (and drop) their own databases on it; see tests/postgres.py.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

pg_up() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }

if pg_up; then
  echo "services: PostgreSQL running" >&2
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
  echo "services: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi
started=0
# pg_lsclusters -h: "version cluster port status owner datadir logfile"
while read -r version cluster port _status _rest; do
  [ "$port" = "$PORT" ] || continue
  echo "services: starting PostgreSQL $version/$cluster" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
  started=1
done < <(pg_lsclusters -h)
if [ "$started" = 0 ]; then
  echo "services: no PostgreSQL cluster listens on port $PORT (pg_createcluster)" >&2
  exit 1
fi
for _ in $(seq 1 60); do pg_up && break; sleep 1; done
pg_up || { echo "services: PostgreSQL did not come up in 60 s" >&2; exit 1; }
echo "services: PostgreSQL running" >&2
