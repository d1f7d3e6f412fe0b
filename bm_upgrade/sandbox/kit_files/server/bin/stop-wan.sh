#!/bin/sh
# Stops the WAN replication orchestrator bound as the wan.xml says:
#   stop-wan.sh -f <wan.xml>
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"
exec "$TC_PYTHON" "$TC_LIB_DIR/tcwan.py" stop "$@"
