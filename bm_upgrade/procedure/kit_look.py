"""A kit root as seen on its host: what proves it is a BigMemory kit, and the one command that
looks at it (and at the staged files) before a swap.

docs/safety.md rule 9: the tool moves or deletes only what it has proven to be a kit root,
its own ``server/bin/version.sh`` having printed a 4.x version. :func:`kit_root_guard` puts
that proof inside a stop command (a wrong ``install_dir`` is refused while the node still
runs); :func:`look_at_kit` reads it before a swap.
"""

from __future__ import annotations

from dataclasses import dataclass

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Orchestrator, Server
from bm_upgrade.inventory.scripts import java_home_problem, refused_for_java, script_argv
from bm_upgrade.probes import Runner, parse_version
from bm_upgrade.remote.quoting import echo_mark, quote, shell, split_marked

NOT_A_KIT = "not-a-kit"
"""The marker :func:`kit_root_guard` prints when it ends a command."""


def proven_kit(version: str | None) -> bool:
    """``version`` (what a kit root's own ``version.sh`` printed) proves a 4.x kit root."""
    return version is not None and version.split(".")[0] == "4"


def kit_root_guard(node: Server | Orchestrator) -> str:
    """A command prefix that ends the command at once (exit 0, printing the marker
    :data:`NOT_A_KIT`, then what ``version.sh`` printed) unless the kit root's own
    ``server/bin/version.sh`` prints a 4.x version; costs no command of its own."""
    script = shell(script_argv(node, "version.sh"))
    return (
        f'bm_kit=$({script} 2>/dev/null); case "$bm_kit" in '
        "*'Terracotta Enterprise 4.'[0-9]*) ;; "
        f"*) {echo_mark(NOT_A_KIT)}; printf '%s\\n' \"$bm_kit\"; exit 0;; esac; "
    )


def not_a_kit(node: Server | Orchestrator, printed: list[str], done: str) -> StepFailed:
    """The refusal for a kit root that did not prove to be a 4.x kit (``done``: what was left
    as it was, in words); a ``version.sh`` that refused to run without a usable JAVA_HOME
    is named as such."""
    if refused_for_java("\n".join(printed)):
        return StepFailed(node.name, f"{done}: {java_home_problem(node)}")
    said = parse_version("\n".join(printed)) or (" | ".join(printed)[:120] or "nothing")
    return StepFailed(
        node.name,
        f"{node.kit_root.path}, the kit root of {node.name} on {node.host}, "
        f"is not a BigMemory Max 4.x kit (its server/bin/version.sh printed "
        f"{said}), and the tool swaps only a kit root it has proven; {done}; set "
        f"install_dir of {node.name} in the inventory to its kit root (or "
        "make that version.sh run), then rerun",
    )


@dataclass(frozen=True)
class KitLook:
    """What one command saw of a node's kit before the swap.

    Attributes:
        printed: what the kit root's ``version.sh`` printed (non-blank lines).
        previous: when the kit root is missing, the kept previous kits of this kit root
            and anything else named like them, newest first.
    """

    printed: list[str]
    root_exists: bool
    root_license: bool
    staged_kit: bool
    staged_license: bool
    previous: list[str]

    @property
    def current(self) -> str | None:
        """The version the kit root's ``version.sh`` printed, if any."""
        return parse_version("\n".join(self.printed))


def look_at_kit(
    conn: Runner, node: Server | Orchestrator, staged_kit: str, staged_license: str
) -> KitLook:
    """The kit root's version, which of the kit root, its license and the staged files exist,
    and, when the kit root is missing, the previous kits kept beside it, in one command."""
    root = node.kit_root
    tests = {
        "root_exists": ["test", "-e", root.path],
        "root_license": ["test", "-s", root.license],
        "staged_kit": ["test", "-s", staged_kit],
        "staged_license": ["test", "-s", staged_license],
    }
    # Newest first by status change time, which a move (rename) sets.
    previous = (
        f"test -e {quote(root.path)} || {{ {echo_mark('previous')}; "
        f"ls -1dtc -- {quote(root.previous_dir)}/{quote(root.name)}-* 2>/dev/null; }}"
    )
    script = (
        "; ".join(
            [echo_mark("version"), shell(script_argv(node, "version.sh")) + " 2>/dev/null"]
            + [f"{shell(argv)} && {echo_mark(name)}" for name, argv in tests.items()]
            + [previous]
        )
        + "; true"
    )
    sections = split_marked(conn.run(script, check=False).stdout)
    return KitLook(
        printed=sections.get("version", []),
        previous=sections.get("previous", []),
        **{name: name in sections for name in tests},
    )
