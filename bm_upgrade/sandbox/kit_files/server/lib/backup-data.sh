#!/bin/sh
# What tools/management-console/bin/backup-data.sh runs (see tcbackup.py).
. "$(cd "$(dirname "$0")" && pwd)/tc-env.sh"
exec "$TC_PYTHON" "$TC_LIB_DIR/tcbackup.py" "$@"
