"""Who else uses a kit root about to be swapped: any process whose working directory,
executable, command line or open files lie under it (a management console started from
``tools/management-console``, a shell sitting in the folder, a tool left running).

docs/safety.md rule 9: a kit root is moved only when nothing but its own (stopped) node uses
it. The look reads ``/proc`` and the process list with a POSIX shell, ``ps``, ``ls`` and
``awk`` (``fuser`` and ``lsof`` may be missing on a real host), first thing in the swap's own
command (:mod:`~bm_upgrade.procedure.kit_swap`), so nothing is moved when it finds a user; its
output is bounded.
The processes of the look's own SSH command (its session: the login's shell, its wrappers,
its children) never count. A process of another user whose ``/proc`` entries the login may
not read is seen by its command line only.
"""

from __future__ import annotations

from dataclasses import dataclass

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Orchestrator, Server
from bm_upgrade.probes.processes import PROCESS_LIST
from bm_upgrade.remote.quoting import quote

SHOWN = 5
"""At most this many processes are named; the rest are counted."""
IN_USE = "kit-in-use"
"""The marker before the processes a swap's command found using its kit root."""

# Reads ps's pid, session and user per process, then (after "@@args") every process's
# command line (PROCESS_LIST: ps would turn non-ASCII letters into "?"), then (after "@@ls")
# `ls -l` of every process's cwd, exe and fd folder; prints "pid<TAB>user<TAB>why<TAB>command"
# per foreign user of BM_ROOT, then "more<TAB>N" when more than SHOWN were found. A path
# counts when it is the root or lies below it; a command line when it names the root as a
# whole path (not a longer one).
_AWK = r"""
function at_root(t) { return t == r || index(t, r "/") == 1 }
function mentions(a,   s, i, b, c, prev) {
  s = a; prev = " "
  while ((i = index(s, r)) > 0) {
    b = (i == 1) ? prev : substr(s, i - 1, 1)
    c = substr(s, i + length(r), 1)
    if (index(" =:'\"", b) > 0 && (c == "" || index("/ :'\"", c) > 0)) return 1
    prev = substr(s, i + length(r) - 1, 1)
    s = substr(s, i + length(r))
  }
  return 0
}
function note(p, w) { if (!(p in why)) { why[p] = w; order[++n] = p } }
BEGIN { r = ENVIRON["BM_ROOT"]; me = ENVIRON["BM_SID"]; sec = 0; n = 0; cur = "" }
$0 == "@@args" { sec = 1; next }
$0 == "@@ls" { sec = 2; next }
sec == 0 { sid[$1] = $2; usr[$1] = $3; next }
sec == 1 {
  p = $1; a = $0; sub(/^[0-9]+ /, "", a); args[p] = a
  if (mentions(a)) note(p, "its command line names the kit root")
  next
}
/^\/proc\/[0-9]+\/fd:$/ { split($0, x, "/"); cur = x[3]; next }
{
  i = index($0, " -> "); if (i == 0) next
  t = substr($0, i + 4); sub(/ \(deleted\)$/, "", t)
  if (!at_root(t)) next
  k = split(substr($0, 1, i - 1), f, " "); last = f[k]
  split(last, y, "/")
  if (last ~ /^\/proc\/[0-9]+\/cwd$/) note(y[3], "its working directory is " t)
  else if (last ~ /^\/proc\/[0-9]+\/exe$/) note(y[3], "it runs " t)
  else if (cur != "") note(cur, "it has " t " open")
}
END {
  shown = 0
  for (k = 1; k <= n; k++) {
    p = order[k]
    if (!(p in sid) || sid[p] == me || sid[p] == "") continue
    if (shown < SHOWN) printf "%s\t%s\t%s\t%s\n", p, usr[p], why[p], substr(args[p], 1, 160)
    shown++
  }
  if (shown > SHOWN) printf "more\t%d\n", shown - SHOWN
}
""".replace("SHOWN", str(SHOWN))


def users_script(root: str) -> str:
    """A command printing the processes other than this command's own that use ``root``
    (see :func:`parse_users`); it always exits 0."""
    listing = (
        "{ ps -eo pid=,sid=,user=; echo @@args; "
        + PROCESS_LIST
        + "; echo @@ls; ls -l /proc/[0-9]*/cwd /proc/[0-9]*/exe /proc/[0-9]*/fd 2>/dev/null; }"
    )
    return (
        "bm_sid=$(ps -o sid= -p $$ | tr -d ' '); "
        f'{listing} | BM_ROOT={quote(root.rstrip("/") or "/")} BM_SID="$bm_sid" '
        f"awk {quote(_AWK)}; true"
    )


@dataclass(frozen=True)
class KitUser:
    """One process using a kit root: who, running what, and why it counts."""

    pid: int
    user: str
    why: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} of {self.user} ({self.command or '?'}: {self.why})"


def parse_users(lines: list[str]) -> tuple[list[KitUser], int]:
    """The processes :func:`users_script` printed, and how many more it left unnamed."""
    users: list[KitUser] = []
    more = 0
    for line in lines:
        parts = line.split("\t")
        if parts[0] == "more" and len(parts) == 2 and parts[1].isdigit():
            more = int(parts[1])
        elif len(parts) == 4 and parts[0].isdigit():
            users.append(KitUser(int(parts[0]), parts[1], parts[2], parts[3].strip()))
    return users, more


def kit_in_use(
    node: Server | Orchestrator, users: list[KitUser], more: int, done: str
) -> StepFailed:
    """The refusal to swap a kit root that other processes use (nothing of it was moved;
    ``done``: what else was undone, in words)."""
    named = "; ".join(u.describe() for u in users)
    extra = f"; and {more} more" if more else ""
    count = len(users) + more
    which = "that process" if count == 1 else "those processes"
    return StepFailed(
        node.name,
        f"{node.kit_root.path}, the kit root of {node.name} on {node.host}, is in use by "
        f"{count} other process{'es' if count > 1 else ''}: {named}{extra}; the tool swaps "
        f"a kit root only when nothing but {node.name} uses it, so nothing of it was moved "
        f"and {done}; "
        f"end {which} (a management console, a shell sitting in the folder, a tool left "
        "running), then rerun",
    )
