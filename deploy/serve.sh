#!/usr/bin/env bash
# `make serve`: bm_upgrade the way Dagster deployments run it, on this machine. Run, event log
# and schedule storage in PostgreSQL (deploy/dagster-postgres.yaml, the URL from
# BM_UPGRADE_PG_URL), the code location in its own gRPC code server on 127.0.0.1 (port
# BM_UPGRADE_CODE_SERVER_PORT, 4266), and dagster-daemon (run queue, schedules, sensors, run
# monitoring) and dagster-webserver (127.0.0.1:UI_PORT) reading it through
# deploy/workspace-grpc.yaml. The inventories are those of BM_UPGRADE_INVENTORY_DIR.
#
# Without BM_UPGRADE_PG_URL, a PostgreSQL server of its own is started for a rehearsal: its
# data in DAGSTER_HOME/postgres (kept between starts), reachable only through a Unix socket in
# DAGSTER_HOME/postgres-socket (no TCP port, no password), run as the `postgres` user when
# started as root. Ctrl-C or SIGTERM stops everything this script started, by PID.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-.venv/bin}
BIN=$(cd "$BIN" && pwd)
UI_PORT=${UI_PORT:-3000}
export BM_UPGRADE_CODE_SERVER_PORT=${BM_UPGRADE_CODE_SERVER_PORT:-4266}
: "${DAGSTER_HOME:?set DAGSTER_HOME to the Dagster instance folder (make serve sets it)}"
if [[ -z "${BM_UPGRADE_INVENTORY_DIR:-}" ]]; then
  echo "error: BM_UPGRADE_INVENTORY_DIR is not set: set it to the folder of your inventory" \
       "files (e.g. .sandbox/demo for the demo sandbox)" >&2
  exit 2
fi
mkdir -p "$DAGSTER_HOME"
DAGSTER_HOME=$(cd "$DAGSTER_HOME" && pwd)
BM_UPGRADE_INVENTORY_DIR=$(cd "$BM_UPGRADE_INVENTORY_DIR" && pwd)
export DAGSTER_HOME BM_UPGRADE_INVENTORY_DIR
export BM_UPGRADE_UI_URL=${BM_UPGRADE_UI_URL:-http://127.0.0.1:$UI_PORT}
WORKSPACE=$HERE/workspace-grpc.yaml

pids=()
# A background child of a script starts with SIGINT ignored, and a Dagster server that
# ignores it does not stop: reset SIGINT and SIGTERM to default, then become the program
# (the PID recorded is the program's own).
# With `own_session` first, the program leaves the terminal's process group, so Ctrl-C does
# not reach it: PostgreSQL stops only after the Dagster servers, when stop() says so.
launch() {
  local session=0
  if [[ $1 == own_session ]]; then session=1; shift; fi
  "$BIN/python" -c 'import os, signal, sys
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_DFL)
if sys.argv[1] == "1":
    os.setsid()
os.execv(sys.argv[2], sys.argv[2:])' "$session" "$@" &
  pids+=($!)
}
postgres_pid=
stop() {
  # The Dagster servers first (a run worker's last events still reach the database), then
  # PostgreSQL (SIGINT: fast shutdown).
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ -n $postgres_pid ]]; then
    kill -INT "$postgres_pid" 2>/dev/null || true
    wait "$postgres_pid" 2>/dev/null || true
  fi
}
stopping=0
trap 'stopping=1' INT TERM

if [[ -z "${BM_UPGRADE_PG_URL:-}" ]]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -x "$pgbin/initdb" ]] || pgbin=$(dirname "$(command -v initdb || echo /missing/initdb)")
  if [[ ! -x "$pgbin/initdb" ]]; then
    echo "error: BM_UPGRADE_PG_URL is not set and PostgreSQL's server programs are missing:" \
         "set it to your database (postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB) or" \
         "install postgresql for a local rehearsal" >&2
    exit 2
  fi
  as_user=()
  if [[ $(id -u) -eq 0 ]]; then
    as_user=("$(command -v setpriv)" --reuid=postgres --regid=postgres --init-groups)
  fi
  pgdata=$DAGSTER_HOME/postgres
  if [[ $(id -u) -eq 0 ]] && ! "${as_user[@]}" test -x "$DAGSTER_HOME"; then
    echo "error: the postgres user cannot reach $DAGSTER_HOME (a folder on its path is" \
         "private) to keep the rehearsal's database there: use a DAGSTER_HOME it can reach," \
         "or set BM_UPGRADE_PG_URL to your database" >&2
    exit 2
  fi
  pgsock=$DAGSTER_HOME/postgres-socket
  mkdir -p "$pgsock"
  chmod 0700 "$pgsock"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$pgsock"; fi
  if [[ ! -s $pgdata/PG_VERSION ]]; then
    mkdir -p "$pgdata"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$pgdata"; fi
    echo "creating a local PostgreSQL for the rehearsal in $pgdata"
    (cd "$pgdata" && "${as_user[@]}" "$pgbin/initdb" -D "$pgdata" -U bm_upgrade \
      --auth-local=trust --auth-host=reject --encoding=UTF8 >"$DAGSTER_HOME/initdb.log")
  fi
  # No TCP at all: the socket's folder (mode 0700) is the only way in.
  launch own_session "${as_user[@]}" "$pgbin/postgres" -D "$pgdata" -c listen_addresses= \
    -k "$pgsock"
  postgres_pid=${pids[-1]}
  pids=()
  export BM_UPGRADE_PG_URL="postgresql+psycopg2://bm_upgrade@/dagster?host=$pgsock"
  "$BIN/python" - "$pgsock" <<'PY' || { stop; exit 1; }
import sys
import time

import psycopg2

deadline = time.monotonic() + 60
while True:
    try:
        conn = psycopg2.connect(host=sys.argv[1], user="bm_upgrade", dbname="postgres")
        break
    except psycopg2.OperationalError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"error: the local PostgreSQL did not start: {exc}".strip())
        time.sleep(0.2)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster'")
    if cur.fetchone() is None:
        cur.execute("CREATE DATABASE dagster")
conn.close()
PY
  echo "local PostgreSQL for the rehearsal: pid $postgres_pid, socket in $pgsock"
fi

# The instance's settings (deploy/dagster-postgres.yaml unless DAGSTER_HOME has its own, which
# must keep the run history in PostgreSQL) and its tables, created once here: the servers
# would each create them at the same moment.
"$BIN/python" - "$DAGSTER_HOME" "$HERE/dagster-postgres.yaml" <<'PY' || { stop; exit 2; }
import shutil
import sys
from pathlib import Path

from bm_upgrade.defs.instance import prepare_instance
from bm_upgrade.defs.storage import postgres_settings
from bm_upgrade.errors import UserError

home, settings = Path(sys.argv[1]), Path(sys.argv[2])
if not (home / "dagster.yaml").exists():
    shutil.copy(settings, home / "dagster.yaml")
elif postgres_settings(home) is None:
    sys.exit(
        f"error: {home / 'dagster.yaml'} keeps the run history in SQLite; make serve runs "
        f"against PostgreSQL: point DAGSTER_HOME at another folder, or start from {settings}"
    )
try:
    prepare_instance(home)
except UserError as exc:
    sys.exit(f"error: {exc}")
PY

launch "$BIN/dagster" code-server start -h 127.0.0.1 \
  -p "$BM_UPGRADE_CODE_SERVER_PORT" -m bm_upgrade.definitions --location-name bm_upgrade
# The webserver and the daemon load the location once the code server answers.
for _ in $(seq 1 600); do
  if "$BIN/dagster" api grpc-health-check -h 127.0.0.1 -p "$BM_UPGRADE_CODE_SERVER_PORT" \
       >/dev/null 2>&1; then
    break
  fi
  if [[ $stopping == 1 ]] || ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the code server did not start" >&2
    stop
    exit 1
  fi
  sleep 0.2
done
launch "$BIN/dagster-webserver" -h 127.0.0.1 -p "$UI_PORT" -w "$WORKSPACE"
launch "$BIN/dagster-daemon" run -w "$WORKSPACE"

echo "Dagster UI: http://127.0.0.1:$UI_PORT  (code server pid ${pids[0]} on port" \
     "$BM_UPGRADE_CODE_SERVER_PORT, webserver pid ${pids[1]}, daemon pid" \
     "${pids[2]}${postgres_pid:+, PostgreSQL pid $postgres_pid}; Ctrl-C stops them all)"
# Ctrl-C reaches the servers too (same process group): whichever ends first, stop them all.
wait -n "${pids[@]}" ${postgres_pid:+"$postgres_pid"} || true
trap - INT TERM
if [[ $stopping == 0 ]]; then
  echo "a server exited; stopping the others" >&2
fi
stop
exit $(( stopping ? 0 : 1 ))
