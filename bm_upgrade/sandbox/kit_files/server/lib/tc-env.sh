# Sourced by every script in server/bin: the kit's folders, setenv.sh, JAVA_HOME, python3.
# As in the product's scripts, server/bin/setenv.sh is sourced when present (TC_INSTALL_DIR
# names the kit root for it), and then JAVA_HOME must name a directory: otherwise the script
# prints "<script>: the JAVA_HOME environment variable is not defined correctly" on stdout and
# exits 2 (docs/terracotta.md, "Server scripts"). The sandbox runs no Java: any directory does.
# Over SSH the scripts may run under /bin/sh with a minimal PATH, so python3 is looked for
# at its usual absolute path first. TC_PYTHON (e.g. set in setenv.sh) overrides both.
TC_SERVER_DIR=$(cd "$(dirname "$0")/.." && pwd)
TC_KIT_ROOT=$(dirname "$TC_SERVER_DIR")
TC_LIB_DIR="$TC_SERVER_DIR/lib"
TC_INSTALL_DIR="$TC_KIT_ROOT"
if [ -r "$TC_SERVER_DIR/bin/setenv.sh" ]; then
  . "$TC_SERVER_DIR/bin/setenv.sh"
fi
if test ! -d "${JAVA_HOME:-}"; then
  echo "$0: the JAVA_HOME environment variable is not defined correctly"
  exit 2
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
export TC_KIT_ROOT JAVA_HOME
