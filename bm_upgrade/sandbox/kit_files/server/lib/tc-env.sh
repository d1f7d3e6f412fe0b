# Sourced by every script in server/bin: the kit's folders, setenv.sh, and python3.
# Over SSH the scripts may run under /bin/sh with a minimal PATH, so python3 is looked for
# at its usual absolute path first. TC_PYTHON (e.g. set in setenv.sh) overrides both.
TC_SERVER_DIR=$(cd "$(dirname "$0")/.." && pwd)
TC_KIT_ROOT=$(dirname "$TC_SERVER_DIR")
TC_LIB_DIR="$TC_SERVER_DIR/lib"
if [ -f "$TC_SERVER_DIR/bin/setenv.sh" ]; then
  . "$TC_SERVER_DIR/bin/setenv.sh"
fi
if [ -n "${TC_PYTHON:-}" ]; then
  :
elif [ -x /usr/bin/python3 ]; then
  TC_PYTHON=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then
  TC_PYTHON=$(command -v python3)
else
  echo "Cannot find python3 (looked at /usr/bin/python3 and on PATH); set TC_PYTHON in $TC_SERVER_DIR/bin/setenv.sh" >&2
  exit 2
fi
export TC_KIT_ROOT
