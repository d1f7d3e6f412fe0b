"""The staged kit unpacked into one node's own work folder, before anything of its kit root is
moved: the tarball's sha256 checked on the host first (a staged kit may have lain there for
days), then the unpacked kit's ``version.sh`` read. A failed unpack removes the work folder,
and the old kit root is untouched (docs/safety.md rule 8). The new kit's ``version.sh`` runs
with the Java the node's own scripts see (:func:`~bm_upgrade.inventory.scripts.foreign_kit_env`).
One command, every value quoted.
"""

from __future__ import annotations

import posixpath

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Orchestrator, Server
from bm_upgrade.inventory.scripts import foreign_kit_env, java_home_problem, refused_for_java
from bm_upgrade.probes import Runner, parse_version
from bm_upgrade.remote.quoting import echo_mark, quote, shell, split_marked


def _sha256_check(staged_kit: str, kit_sha256: str) -> str:
    """Shell that prints the marker ``sha256`` and the staged kit's sha256, then exits 0,
    when it is not ``kit_sha256`` (an unreadable kit prints an empty sum)."""
    kit = quote(staged_kit)
    # The same command as remote.transfer's: openssl is fast, sha256sum the fallback.
    return (
        f"if command -v openssl >/dev/null 2>&1; then "
        f"sum=$(openssl dgst -sha256 -r < {kit}); else sum=$(sha256sum < {kit}); "
        f'fi; sum=${{sum%% *}}; if [ "$sum" != {quote(kit_sha256.lower())} ]; then '
        f'{echo_mark("sha256")}; echo "$sum"; exit 0; fi; '
    )


def check_staged_kit(
    conn: Runner,
    node: Server | Orchestrator,
    staged_kit: str,
    *,
    target: str,
    kit_sha256: str | None,
    then: str,
    timeout_s: float = 300.0,
) -> None:
    """Before ``node`` is stopped for its install: the staged kit on its host is still there
    and still has the inventory's sha256 (a staged kit may have lain there for days, and a
    stop for an install that cannot happen is an outage for nothing).

    Args:
        then: what the sentence says after "nothing was stopped" (who serves meanwhile).

    Raises:
        StepFailed: the staged kit is missing or its sha256 differs; nothing was stopped.
    """
    if not kit_sha256:
        return
    script = (
        f"if [ ! -f {quote(staged_kit)} ]; then {echo_mark('missing')}; exit 0; fi; "
        + _sha256_check(staged_kit, kit_sha256)
        + "true"
    )
    sections = split_marked(conn.run(script, timeout=timeout_s).stdout)
    again = "run the upgrade again (a new run stages the kit again; a re-execution does not)"
    if "missing" in sections:
        raise StepFailed(
            node.name,
            f"the {target} kit is not staged on {node.host} ({staged_kit} is missing), so "
            f"{node.name} was not stopped ({then}); {again}",
        )
    if "sha256" in sections:
        found = (sections["sha256"] or ["(unreadable)"])[0]
        raise StepFailed(
            node.name,
            f"the staged kit {staged_kit} on {node.host} has sha256 {found}, not the "
            f"inventory's {kit_sha256} for {target}: it changed after it was staged, so "
            f"{node.name} was not stopped ({then}); {again}",
        )


def _unpack_script(
    node: Server | Orchestrator, staged_kit: str, work: str, kit_sha256: str | None
) -> str:
    """Check the staged tarball's sha256 (when known), then unpack it into a fresh ``work``
    folder, removing that folder again when the unpack fails; prints the work folder's top
    entries, then (marker ``version``) the first one's ``version.sh``."""
    folder = quote(work)
    # The new kit has no setenv.sh of the operator's yet (the swap carries it in): its
    # version.sh runs with the Java the node's own scripts see.
    env = foreign_kit_env(node)
    check = _sha256_check(staged_kit, kit_sha256) if kit_sha256 else ""
    unpack = " && ".join(
        [
            shell(["rm", "-rf", "--", work]),
            shell(["mkdir", "-p", work]),
            shell(["tar", "-xzf", staged_kit, "-C", work]),
        ]
    )
    return (
        check + f"err=$( {{ {unpack}; }} 2>&1 ) || {{ {echo_mark('unpack-failed')}; "
        f"printf '%s\\n' \"$err\" | tail -n 3; rm -rf -- {folder} 2>/dev/null; "
        f"if [ -e {folder} ]; then {echo_mark('work-left')}; fi; exit 0; }}; "
        f"ls -A -- {folder}; {echo_mark('version')}; "
        # The single top folder's version.sh (more than one top folder is refused).
        f'for d in {folder}/*; do {env}"$d/server/bin/version.sh" 2>/dev/null; break; done; '
        "true"
    )


def unpack_kit(
    conn: Runner,
    node: Server | Orchestrator,
    staged_kit: str,
    work: str,
    *,
    target: str,
    kit_sha256: str | None,
    timeout_s: float,
) -> str:
    """Unpack into a fresh ``work`` folder; return the new kit root (its single top folder),
    once its ``version.sh`` printed ``target``.

    Raises:
        StepFailed: the staged kit's sha256 is not ``kit_sha256``, the unpack failed, its
            ``version.sh`` refused to run without a usable JAVA_HOME, or the kit is not one
            top folder holding ``target``; the old kit root is untouched and the work folder
            removed.
    """
    sections = split_marked(
        conn.run(_unpack_script(node, staged_kit, work, kit_sha256), timeout=timeout_s).stdout
    )
    untouched = f"{node.name}'s old kit in {node.kit_root.path} is untouched"
    if "sha256" in sections:
        found = (sections["sha256"] or ["(unreadable)"])[0]
        raise StepFailed(
            node.name,
            f"the staged kit {staged_kit} on {node.host} has "
            f"sha256 {found}, not the inventory's {kit_sha256} for {target}: it "
            f"changed after it was staged; nothing was unpacked and {untouched}; "
            "rerun to stage it again",
        )
    if "unpack-failed" in sections:
        said = " | ".join(sections["unpack-failed"]) or "no message"
        removed = (
            f"the partial work folder {work} could not be removed (remove it by hand)"
            if "work-left" in sections
            else f"the partial work folder {work} was removed"
        )
        raise StepFailed(
            node.name,
            f"unpacking {staged_kit} on {node.host} failed "
            f"({said}); {removed} and {untouched}; make room on {node.host} "
            "(or stage the kit again), then rerun",
        )
    tops = sections[""]
    printed = "\n".join(sections.get("version", []))
    version = parse_version(printed)
    if version is None and refused_for_java(printed):
        conn.run(["rm", "-rf", "--", work], check=False)
        raise StepFailed(
            node.name,
            f"the staged kit's version.sh cannot run on {node.host}, so the work folder "
            f"was removed and {untouched}: {java_home_problem(node)}",
        )
    if len(tops) == 1 and version == target:
        return posixpath.join(work, tops[0])
    conn.run(["rm", "-rf", "--", work], check=False)
    if len(tops) != 1:
        raise StepFailed(
            node.name,
            f"{staged_kit} on {node.host} does not hold one top "
            f"folder (found {tops}); it is not a BigMemory Max kit; the work "
            f"folder was removed and {untouched}; check kits[].url, then rerun",
        )
    raise StepFailed(
        node.name,
        f"the staged kit {staged_kit} on {node.host} is "
        f"{version or 'not a readable kit'}, not {target}; the work folder was "
        f"removed and {untouched}; check kits[] in the inventory and stage the "
        "kit again, then rerun",
    )
