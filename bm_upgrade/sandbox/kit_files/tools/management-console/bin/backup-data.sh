#!/bin/sh
# The Database Backup Utility: backs up the data of a restartable cluster's servers.
#   backup-data.sh [-l <tms-host:port>] [-n <name>] [-a <agent>]
# Like every kit script it needs JAVA_HOME (checked by server/lib/tc-env.sh).
exec /bin/sh "$(cd "$(dirname "$0")/../../.." && pwd)/server/lib/backup-data.sh" "$@"
