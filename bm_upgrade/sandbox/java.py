"""Each sandbox host's Java, and where a topology's ``java_home`` mode names it.

The kit's scripts exit 2 unless JAVA_HOME names a directory (docs/terracotta.md, "Server
scripts"), and a host's SSH login has no JAVA_HOME of its own. Every host gets a Java folder,
``<host root>/opt/java`` with a ``bin/java`` stand-in (the sandbox's programs run on python3;
the scripts only check the folder), and the topology's ``java_home`` says who names it:

- ``inventory``: the inventory written by `sandbox up` gives each server and orchestrator its
  ``java_home`` (:func:`inventory_fields`);
- ``setenv``: each kit root's ``server/bin/setenv.sh`` sets it (:func:`write_setenv`), the
  file an upgrade carries into the new kit root;
- ``login``: each host's sshd sets it in every session (:func:`login_environment`);
- ``none``: nobody, so a tool that does not name it is refused by the scripts.

`sandbox up` itself always starts servers and orchestrators with the host's JAVA_HOME
(:func:`start_environment`), so it comes up in every mode.
"""

from __future__ import annotations

import shlex
from pathlib import Path

JAVA_STUB = """#!/bin/sh
# The sandbox's stand-in for a JDK's bin/java: the sandbox's programs run on python3.
case "$1" in
  -version|--version)
    echo 'java version "1.8.0_45"' >&2
    echo 'Java(TM) SE Runtime Environment (build 1.8.0_45-b14)' >&2
    exit 0;;
esac
echo "bm_upgrade sandbox: no Java here; the kit's programs run on python3" >&2
exit 1
"""

SETENV_HEADER = "# Written by `bm-upgrade sandbox up` (topology java_home: setenv).\n"


def java_home_of(host_root: Path) -> Path:
    """The Java folder of the host whose root folder is ``host_root``."""
    return host_root / "opt" / "java"


def lay_out_java(java_home: Path) -> None:
    """Create the host's Java folder with its ``bin/java`` stand-in."""
    (java_home / "bin").mkdir(parents=True, exist_ok=True)
    stub = java_home / "bin" / "java"
    stub.write_text(JAVA_STUB, encoding="utf-8")
    stub.chmod(0o755)


def setenv_text(java_home: Path) -> str:
    """A ``server/bin/setenv.sh`` naming ``java_home``, as an operator would write it."""
    return f"{SETENV_HEADER}JAVA_HOME={shlex.quote(str(java_home))}\nexport JAVA_HOME\n"


def write_setenv(install_dir: Path, java_home: Path) -> None:
    """Write the kit root's ``server/bin/setenv.sh`` naming ``java_home``."""
    path = install_dir / "server" / "bin" / "setenv.sh"
    path.write_text(setenv_text(java_home), encoding="utf-8")
    path.chmod(0o755)


def inventory_fields(mode: str, java_home: Path) -> dict[str, str]:
    """A node's inventory fields for ``mode``: its ``java_home`` in ``inventory`` mode."""
    return {"java_home": str(java_home)} if mode == "inventory" else {}


def login_environment(mode: str, java_home: Path) -> dict[str, str]:
    """What the host's sshd sets in every session: JAVA_HOME in ``login`` mode only."""
    return {"JAVA_HOME": str(java_home)} if mode == "login" else {}


def start_environment(java_home: Path) -> dict[str, str]:
    """What `sandbox up` adds to the login environment when it starts a node itself."""
    return {"JAVA_HOME": str(java_home)}
