"""The one place a command running one of the kit's server scripts is built.

Every call of ``start-tc-server.sh``, ``stop-tc-server.sh``, ``server-stat.sh``, ``version.sh``,
``start-wan.sh`` and ``stop-wan.sh`` (docs/terracotta.md, "Server scripts") goes through
:func:`script_argv`, so what every script needs from the node it runs for is added here once.

What they need is Java: each script sources ``server/bin/setenv.sh`` when present, then exits
2 printing ``<script>: the JAVA_HOME environment variable is not defined correctly`` unless
JAVA_HOME names a directory. A node's ``java_home`` (the inventory's, resolved per node by
:mod:`bm_upgrade.inventory.java_home`) goes into the script's environment; without one, the
host's login environment and the kit root's ``setenv.sh`` must provide it (preflight checks
that they do: :mod:`bm_upgrade.procedure.java_check`).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from bm_upgrade.inventory.kitroot import KitRoot
from bm_upgrade.inventory.nodes import Orchestrator, Server
from bm_upgrade.remote.quoting import STDIN_VALUE, fed

JAVA_HOME_REFUSAL = "the JAVA_HOME environment variable is not defined correctly"
"""What every kit script prints (after its own path and ``: ``) before it exits 2."""


def script_env(node: Server | Orchestrator) -> list[str]:
    """What goes before a kit script's path in ``node``'s command: ``env JAVA_HOME=<dir>``
    when the node has a ``java_home``, else nothing."""
    return ["env", f"JAVA_HOME={node.java_home}"] if node.java_home else []


def script_argv(
    node: Server | Orchestrator, name: str, *args: str, root: KitRoot | None = None
) -> list[str]:
    """The argv running ``<root>/server/bin/<name> args`` for ``node``; ``root`` defaults to
    the node's kit root (a kit unpacked elsewhere, e.g. in its work folder, passes its own)."""
    kit = root if root is not None else node.kit_root
    return [*script_env(node), kit.script(name), *args, *management_args(node, name)]


MANAGED_SCRIPTS = ("server-stat.sh", "stop-tc-server.sh", "backup-data.sh")
"""The scripts that talk to a server's management port, and so take its connection options."""


def management_args(node: Server | Orchestrator, name: str) -> list[str]:
    """The connection options of a secured management port for script ``name``
    (docs/terracotta.md, "Secured clusters"): ``-u <user> -w <password> --secured``, and
    ``-k`` when certificates are not checked. The password is not in the command: ``-w``
    takes the command's standard input (:data:`STDIN_VALUE`), which :func:`script_input`
    gives; every command built with these must be sent with it (:func:`fed`)."""
    security = node.management_security if isinstance(node, Server) else None
    if security is None or name not in MANAGED_SCRIPTS:
        return []
    unchecked = [] if security.verify else ["-k"]
    return ["-u", security.user, "-w", STDIN_VALUE, "--secured", *unchecked]


def script_input(node: Server | Orchestrator, name: str) -> str | None:
    """What a command running script ``name`` for ``node`` gets on its standard input: the
    management password of a secured server, read now (None: nothing).

    Raises:
        SecretUnavailable: the password's variable or file cannot be read.
    """
    if not management_args(node, name):
        return None
    security = node.management_security if isinstance(node, Server) else None
    return None if security is None else security.password() + "\n"


def with_script_input(command: str, node: Server | Orchestrator, name: str) -> str:
    """``command`` (one that runs script ``name`` for ``node``) with its standard input."""
    return fed(command, script_input(node, name))


def java_export(node: Server | Orchestrator) -> str:
    """A prefix for the operator's own ``start_command``/``stop_command`` of ``node``:
    ``JAVA_HOME=<dir>; export JAVA_HOME; `` (quoted) when the node has a ``java_home``."""
    if not node.java_home:
        return ""
    return f"JAVA_HOME={shlex.quote(node.java_home)}; export JAVA_HOME; "


def foreign_kit_env(node: Server | Orchestrator) -> str:
    """A prefix (ending in a space) for running a script of a kit that is not yet the node's
    kit root (the staged kit, unpacked in the node's work folder) with the Java the node's own
    scripts see: its ``java_home``, else what its kit root's ``setenv.sh`` and the login give
    (that ``setenv.sh`` is carried into the new kit only by the swap)."""
    if node.java_home:
        return " ".join(shlex.quote(word) for word in script_env(node)) + " "
    root = node.kit_root
    setenv = shlex.quote(root.script("setenv.sh"))
    found = (
        f"TC_INSTALL_DIR={shlex.quote(root.path)}; if [ -r {setenv} ]; then "
        f'. {setenv} >/dev/null 2>&1; fi; printf %s "${{JAVA_HOME:-}}"'
    )
    return f'env JAVA_HOME="$({found})" '


def refused_for_java(output: str) -> bool:
    """Whether a kit script's ``output`` is its refusal to run without a usable JAVA_HOME."""
    return JAVA_HOME_REFUSAL in output


def java_home_fix(nodes: Iterable[Server | Orchestrator]) -> str:
    """What the operator can do, in words: name the Java in the inventory, or in the kit
    root's ``setenv.sh`` (which an upgrade carries into the new kit)."""
    chosen = list(nodes)
    names = ", ".join(node.name for node in chosen)
    setenvs = sorted({node.kit_root.script("setenv.sh") for node in chosen})
    where = " and ".join(setenvs) if len(setenvs) <= 2 else "each kit root's server/bin/setenv.sh"
    return (
        f"set java_home in the inventory (for the cluster, or on {names}) to the host's Java "
        f"folder, or set JAVA_HOME in {where}"
    )


def java_home_problem(node: Server | Orchestrator) -> str:
    """One node's kit scripts refused to run for want of JAVA_HOME: what, where, the fix."""
    seen = (
        f"its java_home {node.java_home}, or what its setenv.sh sets, is not a directory there"
        if node.java_home
        else "neither the login nor the kit's setenv.sh sets it to a directory"
    )
    return (
        f"the kit scripts of {node.name} on {node.host} exit 2 ({JAVA_HOME_REFUSAL}: {seen}); "
        f"{java_home_fix([node])}, then rerun"
    )
