#!/bin/sh
# Stops a Terracotta server through its management port:
#   stop-tc-server.sh -f <tc-config.xml> -n <server-name> [--force]
# Stopping an ACTIVE whose mirror is not PASSIVE-STANDBY is refused without --force.
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"
exec "$TC_PYTHON" "$TC_LIB_DIR/tcctl.py" stop "$@"
