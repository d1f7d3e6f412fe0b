#!/bin/sh
# Prints the health, role and state of servers:
#   server-stat.sh -s <host>:<management-port>[,<host>:<port>...]  |  -f <tc-config.xml>
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"
exec "$TC_PYTHON" "$TC_LIB_DIR/tcctl.py" stat "$@"
