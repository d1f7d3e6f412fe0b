#!/bin/sh
# Runs a WAN replication orchestrator in the foreground:
#   start-wan.sh -f <wan.xml>
# Exit code 2: startup error (configuration, license without WAN, port in use); the log says why.
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"
exec "$TC_PYTHON" "$TC_LIB_DIR/tcwan.py" run "$@"
