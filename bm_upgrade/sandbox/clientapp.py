"""Install the sandbox's client application (an "application JVM" with the kit's jars).

Layout of ``app_dir``: ``bin/app.sh start|stop|status``, ``bin/app.py`` (the application),
``lib/`` (copies of the kit's ``ehcache-ee-*.jar`` and ``terracotta-toolkit-runtime-ee-*.jar``:
their version is the client's version), ``etc/app.json`` (which stripes to write to, where the
ledger and journal are), ``logs/app.log``, ``run/app.pid``.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

from bm_upgrade.sandbox.kit_files.server.lib import tccommon

APP_FILES = Path(__file__).resolve().parent / "app_files"

APP_SH = """#!/bin/sh
# The sandbox client application: app.sh start|stop|status
APP_DIR=$(cd "$(dirname "$0")/.." && pwd)
PID_FILE="$APP_DIR/run/app.pid"
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=$(command -v python3); fi
# Running = the pid file names a live app.py. An exited process that nobody reaped yet (a
# zombie: PID 1 may not reap orphans) or a pid reused by another program does not count.
running() {
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    [ "$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)" != Z ] || return 1
    tr '\\0' ' ' <"/proc/$pid/cmdline" | grep -q "bin/app.py" || return 1
  fi
  return 0
}
case "${1:-}" in
start)
  if running; then echo "already running (pid $(cat "$PID_FILE"))"; exit 0; fi
  mkdir -p "$APP_DIR/run" "$APP_DIR/logs"
  # Own session and no inherited descriptors, so an SSH session that started it can end.
  if command -v setsid >/dev/null 2>&1; then DETACH=setsid; else DETACH=; fi
  $DETACH nohup "$PY" "$APP_DIR/bin/app.py" >>"$APP_DIR/logs/app.log" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  echo "started (pid $!)"
  ;;
stop)
  if ! running; then rm -f "$PID_FILE"; echo "not running"; exit 0; fi
  # The sandbox fault client-stop-hangs holds the stop here while it is in force.
  "$PY" "$APP_DIR/bin/app.py" hold-stop
  pid=$(cat "$PID_FILE")
  kill -TERM "$pid"
  i=0
  while running; do
    i=$((i + 1))
    if [ "$i" -gt 300 ]; then echo "did not stop within 15 s (pid $pid)" >&2; exit 1; fi
    sleep 0.05
  done
  rm -f "$PID_FILE"
  echo "stopped"
  ;;
status)
  if running; then echo "running (pid $(cat "$PID_FILE"))"; exit 0; fi
  echo "not running"
  exit 3
  ;;
*)
  echo "usage: app.sh start|stop|status" >&2
  exit 2
  ;;
esac
"""


class SandboxError(Exception):
    """The sandbox cannot do what was asked; the message names the file and the fix."""


def region_stripes(sandbox: dict[str, Any], region: str) -> list[dict[str, Any]]:
    """``[{"name", "servers": [[host, tsa_port], ...]}]`` of a region, in sandbox.json order."""
    stripes: dict[str, list[list[Any]]] = {}
    for info in sandbox.get("servers", {}).values():
        if info.get("region") == region:
            stripes.setdefault(str(info["stripe"]), []).append(
                [str(info["host"]), int(info["tsa_port"])]
            )
    return [{"name": name, "servers": servers} for name, servers in stripes.items()]


def client_jars(lib_or_kit: Path) -> list[Path]:
    """The two client jars under a kit root (apis/...) or in a lib folder."""
    patterns = ("ehcache-ee-*.jar", "terracotta-toolkit-runtime-ee-*.jar")
    found = [jar for pattern in patterns for jar in sorted(lib_or_kit.rglob(pattern))]
    if len(found) != 2:
        raise SandboxError(
            f"{lib_or_kit} must hold exactly one ehcache-ee-*.jar and one "
            f"terracotta-toolkit-runtime-ee-*.jar (found {len(found)} jars)"
        )
    return found


def install_client_app(
    app_dir: Path,
    kit_root: Path,
    *,
    name: str,
    rate_per_s: float = 20.0,
    stripes: list[dict[str, Any]] | None = None,
) -> None:
    """Create the application in ``app_dir`` with the client jars of ``kit_root``.

    Args:
        app_dir: the application folder (created).
        kit_root: the kit whose ``apis/`` jars go to ``app_dir/lib``.
        name: the client's name (a key of sandbox.json's ``clients``).
        rate_per_s: acknowledged writes per second the application aims at.
        stripes: override the stripes read from sandbox.json (``region_stripes`` format).

    Raises:
        SandboxError: no sandbox.json above ``app_dir``, unknown client, or missing jars.
    """
    sandbox = tccommon.find_sandbox(app_dir)
    if sandbox is None:
        raise SandboxError(f"no sandbox.json in {app_dir} or its parents; write it first")
    info = sandbox.get("clients", {}).get(name)
    if info is None and stripes is None:
        raise SandboxError(f"client {name!r} is not in sandbox.json's clients")
    region = str((info or {}).get("region", ""))
    if stripes is None:
        stripes = region_stripes(sandbox, region)
    if not stripes:
        raise SandboxError(f"region {region!r} of client {name!r} has no servers in sandbox.json")
    jars = client_jars(kit_root / "apis")
    for folder in ("bin", "lib", "etc", "logs", "run"):
        (app_dir / folder).mkdir(parents=True, exist_ok=True)
    for jar in jars:
        shutil.copyfile(jar, app_dir / "lib" / jar.name)
    shutil.copyfile(APP_FILES / "sandbox_app.py", app_dir / "bin" / "app.py")
    (app_dir / "bin" / "app.sh").write_text(APP_SH, encoding="utf-8")
    (app_dir / "bin" / "app.sh").chmod(0o755)
    ledger_dir = Path(sandbox.get("ledger_dir") or Path(sandbox["dir"]) / "ledgers")
    ledger_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "name": name,
        "region": region,
        "stripes": stripes,
        "rate_per_s": rate_per_s,
        "ledger": str(ledger_dir / f"{name}.jsonl"),
        "journal": sandbox.get("journal"),
        "sandbox_dir": sandbox.get("dir"),
    }
    (app_dir / "etc" / "app.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def commands(app_dir: Path) -> dict[str, str]:
    """The inventory's start/stop/status commands of an application installed in app_dir."""
    script = shlex.quote(str(app_dir / "bin" / "app.sh"))
    return {
        "start_command": f"{script} start",
        "stop_command": f"{script} stop",
        "status_command": f"{script} status",
        "lib_dir": str(app_dir / "lib"),
    }
