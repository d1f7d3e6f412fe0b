#!/bin/sh
# Runs a Terracotta server in the foreground:
#   start-tc-server.sh -f <tc-config.xml> -n <server-name>
# Exit code 2: startup error (configuration, license, port in use, version); the log says why.
# Exit code 11 from the server means "restart me" (a dirty mirror): the server is relaunched.
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"

child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM INT HUP
while :; do
  "$TC_PYTHON" "$TC_LIB_DIR/tcserver.py" "$@" &
  child=$!
  wait "$child"
  rc=$?
  # wait returns early when a trapped signal arrives; collect the server's real status.
  while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    rc=$?
  done
  child=
  if [ "$rc" -ne 11 ]; then
    exit "$rc"
  fi
  echo "Server requested a restart (exit code 11); restarting"
done
