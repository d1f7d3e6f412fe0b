#!/usr/bin/env bash
# `make ui`: the demo sandbox (started unless it runs), then dagster-webserver and
# dagster-daemon on 127.0.0.1 for the inventories of BM_UPGRADE_INVENTORY_DIR (default: the
# demo sandbox's folder), run history in DAGSTER_HOME. Ctrl-C or SIGTERM stops both, by PID.
# The sandbox keeps running: `bm-upgrade sandbox down --dir .sandbox/demo` stops it.
set -euo pipefail
BIN=${BIN:-.venv/bin}
UI_PORT=${UI_PORT:-3000}
DEMO_DIR=${DEMO_DIR:-.sandbox/demo}
: "${DAGSTER_HOME:?set DAGSTER_HOME to the Dagster instance folder (make ui sets it)}"
export DAGSTER_HOME
export BM_UPGRADE_UI_URL=${BM_UPGRADE_UI_URL:-http://127.0.0.1:$UI_PORT}

if [[ -z "${BM_UPGRADE_INVENTORY_DIR:-}" ]]; then
  "$BIN/python" - "$DEMO_DIR" <<'PY'
import sys
from pathlib import Path

from bm_upgrade.sandbox import cluster

folder = Path(sys.argv[1]).resolve()
if (folder / "sandbox.json").exists() and cluster.running_pids(folder):
    print(f"demo sandbox already running in {folder}")
else:
    cluster.up("demo", folder, progress=lambda msg: print(f"sandbox: {msg}"))
PY
  export BM_UPGRADE_INVENTORY_DIR=$DEMO_DIR
fi

# The instance's settings and storage, created once here: the webserver and the daemon would
# each create the SQLite storage of an empty DAGSTER_HOME at the same moment.
"$BIN/python" -c 'import pathlib, sys
from bm_upgrade.defs.launch import prepare_instance
prepare_instance(pathlib.Path(sys.argv[1]))' "$DAGSTER_HOME"

# A background child of a script starts with SIGINT ignored, and a Dagster server that
# ignores it does not stop: reset SIGINT and SIGTERM to default, then become the server.
launch() {
  "$BIN/python" -c 'import os, signal, sys
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$@" &
}
launch "$BIN/dagster-webserver" -h 127.0.0.1 -p "$UI_PORT" -m bm_upgrade.definitions
web=$!
launch "$BIN/dagster-daemon" run -m bm_upgrade.definitions
daemon=$!

stop() {
  kill -TERM "$web" "$daemon" 2>/dev/null || true
  wait "$web" "$daemon" 2>/dev/null || true
}
# Ctrl-C reaches the servers too (same process group): whichever ends first, stop both.
stopping=0
trap 'stopping=1' INT TERM
echo "Dagster UI: http://127.0.0.1:$UI_PORT  (webserver pid $web, daemon pid $daemon;" \
     "Ctrl-C stops both)"
wait -n "$web" "$daemon" || true
trap - INT TERM
if [[ $stopping == 0 ]]; then
  echo "a Dagster server exited; stopping the other" >&2
fi
stop
exit $(( stopping ? 0 : 1 ))
