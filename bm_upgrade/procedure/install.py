"""One server on its host: stop it, swap its kit for the staged one, start it.

Stopping uses the kit's stop script (or the inventory's ``stop_command``), with ``--force``
only for a stripe of one server whose downtime the operator consented to, and waits until the
process is gone. Starting happens only once the kit root holds the
license key, detached with the kit's start script (or the inventory's ``start_command``).

The kit swap (:func:`install_kit`), in order, each part skipped when already done:

1. optionally delete the server's ``dirty-objectdb-backup/dirty-objectdb-*`` folders;
2. unpack the staged tarball into a work folder next to the kit root
   (``<parent>/.bm-upgrade-work/``) and check its ``version.sh`` prints the target;
3. carry what the operator changed inside the old kit into the new one (``tc-config.xml`` in
   the kit root or ``server/``, ``server/bin/setenv.sh``, the inventory's tc-config when it
   lives inside the kit) and put the staged license key in the new kit root, so the new kit
   root holds the license before it can ever be started;
4. move the old kit root aside to ``<parent>/.bm-upgrade-previous/<name>-<version>`` (removed
   afterwards when the policy does not keep it) and move the new one in its place.

The old kit is moved only when it exists, so a rerun after an interruption between the two
moves never deletes the only copy of the previous kit. Every value in a command is quoted.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from bm_upgrade.errors import CommandFailed, RemoteError, StepFailed
from bm_upgrade.inventory import Orchestrator, Server
from bm_upgrade.license import LICENSE_FILE_NAME
from bm_upgrade.probes import Runner, parse_version
from bm_upgrade.procedure.records import StepRecorder
from bm_upgrade.procedure.waits import Watch
from bm_upgrade.remote.quoting import (
    detached,
    echo_mark,
    printed_pid,
    quote,
    shell,
    split_marked,
)

WORK_DIR_NAME = ".bm-upgrade-work"
PREVIOUS_DIR_NAME = ".bm-upgrade-previous"
CARRIED = ("tc-config.xml", "server/tc-config.xml", "server/bin/setenv.sh")
"""Files an operator may have changed inside a kit root (TERRACOTTA.md, Kit)."""


# -- stop and start ---------------------------------------------------------------------------
def console_log(server: Server) -> str:
    """Where a detached start writes the console (inventory default: next to the kit root)."""
    return server.console_log or posixpath.join(
        posixpath.dirname(server.install_dir.rstrip("/")) or "/", f"{server.name}.console.log")


def _script(server: Server, name: str) -> str:
    return posixpath.join(server.install_dir.rstrip("/"), "server", "bin", name)


def console_tail(watch: Watch, server: Server) -> str:
    """The last lines of the server's console log, on one line (for a failure message)."""
    log_path = console_log(server)
    try:
        out = watch.pool.get(server.host).run(["tail", "-n", "3", "--", log_path],
                                              check=False).stdout
    except RemoteError:
        return f"(cannot read {log_path})"
    return f"last lines of {log_path}: " + (" | ".join(out.strip().splitlines()) or "(empty)")


def stop_server(watch: Watch, server: Server, rec: StepRecorder, *,
                downtime_consented: bool = False) -> None:
    """Stop the server with its stop script and wait until it exited.

    ``--force`` is passed only with ``downtime_consented`` (a stripe of one server, whose
    upgrade the operator allowed to stop it): otherwise the script's own refusal to stop an
    ACTIVE without a PASSIVE-STANDBY mirror stays in force.

    Raises:
        StepFailed: the script refused (an ACTIVE without a PASSIVE-STANDBY mirror) or
            failed, or the process did not exit within ``policy.timeouts.stop_s``.
    """
    conn = watch.pool.get(server.host)
    timeout = watch.inventory.policy.timeouts.stop_s
    force = ["--force"] if downtime_consented else []
    command = server.stop_command or shell(
        [_script(server, "stop-tc-server.sh"), "-f", server.tc_config, "-n", server.name,
         *force])
    result = conn.run(command, timeout=timeout, check=False)
    said = _first_line(result.stdout + result.stderr, result.exit_code)
    # Still booting or restarting itself (its management port is not up yet): let it
    # answer, then ask again.
    if (result.exit_code != 0 and "refused" not in said.lower() and watch.alive(server)
            and watch.wait_state(server, None, watch.inventory.policy.timeouts.start_s).ok):
        result = conn.run(command, timeout=timeout, check=False)
        said = _first_line(result.stdout + result.stderr, result.exit_code)
    if result.exit_code != 0:
        if "refused" in said.lower():
            raise StepFailed(server.name, f"the stop script refused to stop {server.name} on "
                             f"{server.host} ({said}); it still runs; make its stripe healthy "
                             "(`bm-upgrade status`), then rerun")
        if not watch.alive(server):
            rec.saw(f"{server.name} was not running ({said})")
            return
        raise StepFailed(server.name, f"the stop script could not stop {server.name} on "
                         f"{server.host} ({said}); it still runs; check its management port "
                         f"{server.management_port}, then rerun")
    rec.done(f"ran the stop script ({said})")
    outcome = watch.wait_stopped(server, timeout)
    if not outcome.ok:
        raise StepFailed(server.name, f"{server.name} on {server.host} did not stop within "
                         f"{timeout:g} s of its stop script ({outcome.why_not(timeout)}); check "
                         f"its console log {console_log(server)}, stop it by hand, then rerun")
    rec.done(f"{server.name} exited after {outcome.waited_s:.1f} s")


def _first_line(output: str, exit_code: int) -> str:
    return next((line.strip() for line in output.splitlines() if line.strip()),
                f"exit code {exit_code}")


def start_server(watch: Watch, server: Server, rec: StepRecorder) -> None:
    """Launch the server detached, only once its kit root holds the license key; does not
    wait for it (see :meth:`Watch.wait_state`). An inventory ``start_command`` must return
    once the server is launched (``systemctl start ...``), not run it in the foreground.

    Raises:
        StepFailed: no license key in the kit root (nothing was started).
    """
    conn = watch.pool.get(server.host)
    license_path = posixpath.join(server.install_dir.rstrip("/"), LICENSE_FILE_NAME)
    if server.start_command:
        command = server.start_command
    else:
        log_path = console_log(server)
        command = detached(
            [_script(server, "start-tc-server.sh"), "-f", server.tc_config, "-n", server.name],
            log_path, cwd=posixpath.dirname(server.install_dir.rstrip("/")) or "/")
    output = start_licensed(conn, command, license_path,
                            timeout=watch.inventory.policy.timeouts.start_s)
    if output is None:
        raise StepFailed(server.name, f"{server.name} was not started: {license_path} is "
                         f"missing on {server.host}, and a server starts only once its kit "
                         "root holds the license key; stage the kit again, then rerun")
    if server.start_command:
        rec.done(f"ran the start command of {server.name}")
    else:
        rec.done(f"started {server.name} detached (pid {detached_pid(conn, output)}, "
                 f"console {log_path})")


def start_licensed(conn: Runner, command: str, license_path: str,
                   timeout: float | None = None) -> str | None:
    """Run a start ``command`` only if ``license_path`` is a non-empty file, in one command;
    returns its output, or None when the license key is missing (nothing was run).

    Raises:
        RemoteError: the start command failed.
    """
    guard = (f"if ! test -s {quote(license_path)}; then {echo_mark('no-license')}; exit 0; "
             "fi; ")
    result = conn.run(guard + command, timeout=timeout)
    if "no-license" in split_marked(result.stdout):
        return None
    return result.stdout


def detached_pid(conn: Runner, output: str) -> int:
    """The pid a :func:`~bm_upgrade.remote.quoting.detached` command printed last.

    Raises:
        CommandFailed: it printed no pid.
    """
    pid = printed_pid(output)
    if pid is None:
        raise CommandFailed(conn.host, "start", 0, output,
                            f"expected a pid on stdout, got {output!r}")
    return pid


# -- the kit swap -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KitSwap:
    """Where the kit swap of one server happens on its host."""

    install_dir: str
    work_dir: str
    previous_dir: str

    @classmethod
    def for_server(cls, server: Server | Orchestrator) -> KitSwap:
        root = server.install_dir.rstrip("/") or "/"
        parent = posixpath.dirname(root) or "/"
        base = posixpath.basename(root)
        return cls(install_dir=root,
                   work_dir=posixpath.join(parent, WORK_DIR_NAME, base),
                   previous_dir=posixpath.join(parent, PREVIOUS_DIR_NAME))

    def previous_kit(self, version: str | None) -> str:
        """Where the old kit root goes (``<parent>/.bm-upgrade-previous/<name>-<version>``)."""
        base = posixpath.basename(self.install_dir)
        return posixpath.join(self.previous_dir, f"{base}-{version or 'unknown'}")


def carried_paths(server: Server | Orchestrator) -> list[str]:
    """Paths relative to the kit root to carry into a new kit (the inventory's tc-config, or
    an orchestrator's wan.xml, too, when it lives inside the kit root)."""
    paths = list(CARRIED)
    root = server.install_dir.rstrip("/") + "/"
    config = server.tc_config if isinstance(server, Server) else server.wan_xml
    if config.startswith(root):
        rel = config[len(root):]
        if rel and rel not in paths:
            paths.append(rel)
    return paths


def delete_dirty_backups(conn: Runner, server: Server, rec: StepRecorder) -> None:
    """Remove the server's dirty-objectdb backups (the guide's optional housekeeping)."""
    parent = posixpath.join(server.data_dir.rstrip("/"), "dirty-objectdb-backup")
    # The glob stays outside the quotes so the shell expands it; the folder is quoted.
    pattern = f"{quote(parent)}/dirty-objectdb-*"
    listing = conn.run(f"for d in {pattern}; do if [ -d \"$d\" ]; then echo \"$d\"; fi; done",
                       check=False)
    found = [line for line in listing.stdout.splitlines() if line.strip()]
    if not found:
        rec.saw("no dirty-objectdb backups")
        return
    conn.run(f"rm -rf -- {pattern}")
    rec.done(f"deleted {len(found)} dirty-objectdb backup(s) under {parent}")


@dataclass(frozen=True)
class KitLook:
    """What one command saw of a server's kit before the swap."""

    current: str | None
    root_exists: bool
    root_license: bool
    staged_kit: bool
    staged_license: bool


def look_at_kit(conn: Runner, swap: KitSwap, staged_kit: str, staged_license: str) -> KitLook:
    """The kit root's version and which of the kit root, its license and the staged files
    exist, in one command."""
    tests = {"root_exists": ["test", "-e", swap.install_dir],
             "root_license": ["test", "-s", posixpath.join(swap.install_dir,
                                                           LICENSE_FILE_NAME)],
             "staged_kit": ["test", "-s", staged_kit],
             "staged_license": ["test", "-s", staged_license]}
    script = "; ".join(
        [echo_mark("version"),
         shell([posixpath.join(swap.install_dir, "server/bin/version.sh")]) + " 2>/dev/null"]
        + [f"{shell(argv)} && {echo_mark(name)}" for name, argv in tests.items()]) + "; true"
    sections = split_marked(conn.run(script, check=False).stdout)
    return KitLook(current=parse_version("\n".join(sections.get("version", []))),
                   **{name: name in sections for name in tests})


def install_kit(conn: Runner, server: Server | Orchestrator, *, target: str, staged_kit: str,
                staged_license: str, keep_previous: bool, delete_backups: bool,
                rec: StepRecorder, timeout_s: float = 300.0) -> None:
    """Make the (stopped) server's kit root hold the ``target`` kit and the license key.

    Three commands: one look (kit root version, staged files), the unpack into the work
    folder with the new kit's ``version.sh``, then carry + license + the two moves + the
    installed kit's ``version.sh`` (each a few ms on an open connection; a host's login can
    cost far more than the command itself).

    Raises:
        StepFailed: the staged kit or license is missing, or the kit is not the target.
        RemoteError: a command failed (the old kit root is untouched unless the swap ran).
    """
    if delete_backups and isinstance(server, Server):
        delete_dirty_backups(conn, server, rec)
    swap = KitSwap.for_server(server)
    look = look_at_kit(conn, swap, staged_kit, staged_license)
    current = look.current
    if current == target:
        rec.saw(f"the kit root already holds {target}")
        if not look.root_license:
            _require_staged_license(server, look, staged_license)
            conn.run(["cp", "--", staged_license,
                      posixpath.join(swap.install_dir, LICENSE_FILE_NAME)])
            rec.done(f"put the license key in {swap.install_dir}")
        return
    rec.saw(f"the kit root holds {current or 'no readable kit'}")
    if not look.staged_kit:
        raise StepFailed(server.name, f"the {target} kit is not staged on {server.host} "
                         f"({staged_kit} is missing), so {server.name} cannot be installed; "
                         "run the kit staging step again, then rerun")
    _require_staged_license(server, look, staged_license)
    new_root = _unpack(conn, server, staged_kit, swap, target=target, timeout_s=timeout_s)
    aside = swap.previous_kit(current)
    steps = [_carry_script(swap.install_dir, new_root, carried_paths(server)),
             shell(["cp", "--", staged_license, posixpath.join(new_root, LICENSE_FILE_NAME)])]
    if look.root_exists:
        steps += [shell(["mkdir", "-p", swap.previous_dir]), shell(["rm", "-rf", "--", aside]),
                  shell(["mv", "--", swap.install_dir, aside])]
    steps += [shell(["mv", "--", new_root, swap.install_dir]),
              shell(["rmdir", "--", swap.work_dir])]
    if look.root_exists and not keep_previous:
        steps.append(shell(["rm", "-rf", "--", aside]))
    steps += [echo_mark("installed"),
              shell([posixpath.join(swap.install_dir, "server/bin/version.sh")])]
    sections = split_marked(conn.run(" && ".join(steps), timeout=timeout_s).stdout)
    carried = sections[""]
    if carried:
        rec.done(f"carried {', '.join(carried)} from the old kit")
    rec.done("put the staged license key in the new kit root")
    rec.done(f"unpacked {target} into {swap.install_dir}")
    if look.root_exists and keep_previous:
        rec.done(f"kept the previous kit ({current or 'unknown'}) at {aside}")
    elif look.root_exists:
        rec.done(f"removed the previous kit ({current or 'unknown'})")
    installed = parse_version("\n".join(sections.get("installed", [])))
    if installed != target:
        raise StepFailed(server.name, f"after the install, version.sh in {swap.install_dir} on "
                         f"{server.host} prints {installed or 'nothing'}, not {target}; check "
                         "the kit tarball, then rerun")


def _require_staged_license(server: Server | Orchestrator, look: KitLook,
                            staged_license: str) -> None:
    if not look.staged_license:
        raise StepFailed(server.name, f"the license key is not staged on {server.host} "
                         f"({staged_license} is missing), so {server.name} cannot start on "
                         "its new kit; run the kit staging step again, then rerun")


def _unpack(conn: Runner, server: Server | Orchestrator, staged_kit: str, swap: KitSwap, *,
            target: str, timeout_s: float) -> str:
    """Unpack into a fresh work folder; return the new kit root (its single top folder),
    once its ``version.sh`` printed ``target``."""
    work = swap.work_dir
    output = conn.run(" && ".join([
        shell(["rm", "-rf", "--", work]), shell(["mkdir", "-p", work]),
        shell(["tar", "-xzf", staged_kit, "-C", work]), shell(["ls", "-A", work]),
        echo_mark("version"),
        # The single top folder's version.sh (more than one top folder is refused below).
        f"{{ for d in {quote(work)}/*; do \"$d/server/bin/version.sh\" 2>/dev/null; break; "
        "done; true; }"]), timeout=timeout_s).stdout
    sections = split_marked(output)
    tops = sections[""]
    if len(tops) != 1:
        raise StepFailed(server.name, f"{staged_kit} on {server.host} does not hold one top "
                         f"folder (found {tops}); it is not a BigMemory Max kit; check "
                         "kits[].url, then rerun")
    version = parse_version("\n".join(sections.get("version", [])))
    if version != target:
        raise StepFailed(server.name, f"the staged kit {staged_kit} on {server.host} is "
                         f"{version or 'not a readable kit'}, not {target}; check kits[] in "
                         "the inventory and stage the kit again, then rerun")
    return posixpath.join(work, tops[0])


def _carry_script(old_root: str, new_root: str, paths: list[str]) -> str:
    """A command copying each of ``paths`` present in the old kit root into the new one and
    printing each path it copied."""
    names = " ".join(quote(p) for p in paths)
    return (f"{{ old={quote(old_root)}; new={quote(new_root)}; "
            f"for f in {names}; do if [ -f \"$old/$f\" ]; then "
            "mkdir -p \"$(dirname \"$new/$f\")\" && cp -p \"$old/$f\" \"$new/$f\" && "
            "echo \"$f\" || exit 1; fi; done; }")
