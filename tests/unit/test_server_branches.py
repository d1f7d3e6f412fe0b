"""The server steps' safety branches, driven through ``upgrade_mirrors`` and ``failover`` over
a scripted fake cluster at the procedure's one seam (no process, no sshd, no sockets): an
ACTIVE is not stopped while no mirror is PASSIVE-STANDBY; with no takeover within
``failover_s`` the old active is started again on its old kit; a failed install that left the
old kit untouched starts the server again (and one that did not, does not); a halted run
starts nothing; and each step takes only its own segment's steps (a server to bring back
is either's; the failover step refuses a mirror still to upgrade and does the failback). The
same branches against the sandbox: tests/e2e/test_server_steps.py,
tests/e2e/test_kit_swap_safety.py, tests/e2e/test_halt_on_failure.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from bm_upgrade.errors import CommandFailed, CommandTimeout, StepFailed
from bm_upgrade.inventory import Inventory, Region, Server, Stripe
from bm_upgrade.probes import ServerStatus
from bm_upgrade.probes.processes import PROCESS_LIST
from bm_upgrade.procedure import halt
from bm_upgrade.procedure.records import StepRecord
from bm_upgrade.procedure.servers import StepContext, failover, upgrade_mirrors
from bm_upgrade.remote.quoting import MARK, Command, shell
from tests.unit.inventories import minimal

ACTIVE, STANDBY, SYNCING = "ACTIVE-COORDINATOR", "PASSIVE-STANDBY", "PASSIVE-UNINITIALIZED"
A, B = "tsa-a1", "tsa-a2"  # stripe1 of east, on hosts 10.0.0.1 and 10.0.0.2
TIMEOUTS = {"stop_s": 0.2, "start_s": 0.2, "sync_s": 0.1, "failover_s": 0.1}


@dataclass
class Done:
    exit_code: int
    stdout: str
    stderr: str = ""


@dataclass
class FakeServer:
    """One server as its host and REST port show it.

    Attributes:
        kit: what its kit root's ``version.sh`` prints (None: nothing, exit 127).
        answers: the states its successive REST looks answer while it runs; the last stays.
        runs: the version it runs (None: down).
    """

    server: Server
    kit: str | None
    answers: list[str]
    runs: str | None = None

    def state(self) -> str:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


Install = Callable[[FakeServer, str], Done]


class FakeCluster:
    """The :class:`~bm_upgrade.procedure.waits.Hosts` seam and the REST probe, scripted.

    The hosts know the stop and start scripts, ``ps``, ``version.sh`` and ``tail``; every
    other command is the kit swap's and goes to :attr:`install` (by default: not expected).
    A stopped ACTIVE hands its role to a PASSIVE-STANDBY server when :attr:`takeover`; a
    started server is ACTIVE when no other one is, else it answers :attr:`sync_looks` looks
    PASSIVE-UNINITIALIZED, then PASSIVE-STANDBY. :attr:`ran` records (host, what) in order.
    """

    def __init__(
        self, inventory: Inventory, kits: dict[str, str], states: dict[str, list[str]]
    ) -> None:
        self.servers = {
            s.name: FakeServer(s, kits[s.name], states[s.name], kits[s.name])
            for _, _, s in inventory.servers()
        }
        self.ran: list[tuple[str, str]] = []
        self.takeover = True
        self.sync_looks = 0
        self.install: Install = self.unexpected

    def unexpected(self, fake: FakeServer, command: str) -> Done:
        raise AssertionError(f"unexpected command on {fake.server.host}: {command}")

    def get(self, host: str) -> FakeHost:
        return FakeHost(self, host)

    def probe(self, server: Server, timeout: float) -> ServerStatus:
        fake = self.servers[server.name]
        if fake.runs is None:
            return ServerStatus(
                server.name,
                server.host,
                "unknown",
                "unknown",
                "unknown",
                None,
                False,
                error="connection refused",
            )
        return ServerStatus(
            server.name, server.host, "OK", "unknown", fake.state(), fake.runs, True
        )

    def stop(self, fake: FakeServer) -> None:
        was, fake.runs, fake.answers = fake.answers[0], None, ["unknown"]
        others = [f for f in self.servers.values() if f is not fake and f.runs]
        heir = next((f for f in others if f.answers[0] == STANDBY), None)
        if was == ACTIVE and self.takeover and heir is not None:
            heir.answers = [ACTIVE]

    def start(self, fake: FakeServer) -> None:
        others = [f for f in self.servers.values() if f is not fake and f.runs]
        fake.runs = fake.kit
        if any(f.answers[0] == ACTIVE for f in others):
            fake.answers = [SYNCING] * self.sync_looks + [STANDBY]
        else:
            fake.answers = [ACTIVE]

    def did(self, what: str) -> list[tuple[str, str]]:
        return [(host, w) for host, w in self.ran if w == what]


@dataclass
class FakeHost:
    cluster: FakeCluster
    host: str

    def run(self, command: Command, timeout: float | None = None, check: bool = True) -> Done:
        line = command if isinstance(command, str) else shell(command)
        mine = [f for f in self.cluster.servers.values() if f.server.host == self.host]
        named = next((f for f in mine if f.server.name in line), mine[0])
        if "stop-tc-server.sh" in line:
            self.cluster.ran.append((self.host, "stop"))
            self.cluster.stop(named)
            return Done(0, f"stopped {named.server.name}")
        if "start-tc-server.sh" in line:
            self.cluster.ran.append((self.host, "start"))
            self.cluster.start(named)
            return Done(0, "4242\n")
        if line.startswith(PROCESS_LIST):
            self.cluster.ran.append((self.host, "ps"))
            out = [
                f"{4242 + i} java -f {f.server.tc_config} -n {f.server.name}"
                for i, f in enumerate(mine)
                if f.runs
            ]
            for f in mine:
                if f"{MARK}kit {f.server.name}" in line:
                    out += [f"{MARK}kit {f.server.name}", version_sh(f.kit)]
            return Done(0, "\n".join(out) + "\n")
        if line.endswith("server/bin/version.sh"):
            self.cluster.ran.append((self.host, "version"))
            return Done(0, version_sh(named.kit)) if named.kit else Done(127, "", "not found")
        if line.startswith("tail "):
            return Done(0, "")
        if f"{MARK}missing" in line:  # the staged kit checked before a stop: unchanged
            return Done(0, "")
        if f"{MARK}file 0" in line:  # the tc-config read before a backup: not restartable
            config = (
                f"<tc-config><servers><server name='{named.server.name}'/></servers></tc-config>"
            )
            return Done(0, f"{MARK}file 0\n{config}\n")
        self.cluster.ran.append((self.host, "install"))
        return self.cluster.install(named, line)


def version_sh(version: str | None) -> str:
    return f"Terracotta Enterprise {version}, as of 20150901 (Revision 1)" if version else ""


def stripe(
    kits: dict[str, str],
    states: dict[str, list[str]],
    halted: Callable[[], str | None] | None = None,
) -> tuple[StepContext, FakeCluster]:
    inventory = Inventory.model_validate(minimal(policy={"timeouts": TIMEOUTS}))
    cluster = FakeCluster(inventory, kits, states)
    ctx = StepContext.create(inventory, cluster, target="4.2.1")
    ctx.poll_s, ctx.probe_rest, ctx.halted = 0.01, cluster.probe, halted
    return ctx, cluster


StripeStep = Callable[[StepContext, Region, Stripe], list[StepRecord]]


def on_stripe(step: StripeStep, ctx: StepContext) -> list[StepRecord]:
    """``step`` (upgrade_mirrors or failover) on the test's one stripe."""
    region = ctx.inventory.regions[0]
    return step(ctx, region, region.stripes[0])


def failure_of(step: StripeStep, ctx: StepContext) -> StepFailed:
    """How ``step`` fails on the test's one stripe."""
    with pytest.raises(StepFailed) as caught:
        on_stripe(step, ctx)
    return caught.value


@pytest.fixture(autouse=True)
def no_stop_requested() -> Iterator[None]:
    halt.reset()
    yield
    halt.reset()


def test_the_active_is_not_stopped_while_no_mirror_is_passive_standby() -> None:
    # The look that plans the step sees the mirror in sync; the look right before the stop
    # does not (it restarted itself).
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [STANDBY, SYNCING]})
    failed = failure_of(failover, ctx)
    assert failed.node == A
    assert str(failed).startswith(
        f"{A} (ACTIVE) was not stopped: no mirror of stripe stripe1 was {STANDBY} "
        f"(still {B} {SYNCING} after 0.1 s); the stripe keeps running on {A}"
    )
    assert cluster.ran == []
    assert (cluster.servers[A].runs, cluster.servers[A].answers) == ("4.2.0", [ACTIVE])


def test_no_takeover_within_failover_s_starts_the_old_active_on_its_old_kit() -> None:
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [STANDBY]})
    cluster.takeover = False
    failed = failure_of(failover, ctx)
    assert failed.node == A
    assert str(failed).startswith(
        f"no mirror of stripe stripe1 became {ACTIVE} within 0.1 s of the stop (still "
        f"{A} unknown, {B} {STANDBY} after 0.1 s); started {A} on its 4.2.0 kit again at "
        f"once and {A} is {ACTIVE} again; check the mirror's console log"
    )
    assert cluster.did("stop") + cluster.did("start") == [
        ("10.0.0.1", "stop"),
        ("10.0.0.1", "start"),
    ]
    assert cluster.did("install") == []
    assert (cluster.servers[A].runs, cluster.servers[A].answers) == ("4.2.0", [ACTIVE])


def test_a_failed_install_with_the_old_kit_untouched_starts_the_server_again() -> None:
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.0"}, {A: [ACTIVE], B: [STANDBY]})

    def hangs(fake: FakeServer, command: str) -> Done:
        raise CommandTimeout(fake.server.host, "the look at the kit root", 300)

    cluster.install = hangs
    failed = failure_of(upgrade_mirrors, ctx)
    assert failed.node == B
    assert str(failed) == (
        "on 10.0.0.2: command did not finish within 300 s: the look at the kit root; check "
        "the host's load or raise the timeout in the inventory's policy.timeouts; "
        f"{B} was started again on its untouched 4.2.0 kit"
    )
    assert [w for host, w in cluster.ran if host == "10.0.0.2" and w != "ps"] == [
        "stop",
        "install",
        "version",
        "start",
    ]
    assert (cluster.servers[B].runs, cluster.servers[B].answers) == ("4.2.0", [STANDBY])


def test_a_failed_install_that_touched_the_old_kit_leaves_the_server_down() -> None:
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.0"}, {A: [ACTIVE], B: [STANDBY]})

    def breaks_the_kit(fake: FakeServer, command: str) -> Done:
        fake.kit = None
        raise CommandFailed(fake.server.host, "the swap", 1, "", "mv: Input/output error")

    cluster.install = breaks_the_kit
    with pytest.raises(StepFailed, match=f"^install of {B} failed talking to 10.0.0.2 "):
        on_stripe(upgrade_mirrors, ctx)
    assert cluster.did("start") == []
    assert cluster.servers[B].runs is None


EARLIER = "step upgrade_mirrors_east_stripe2 of this run failed; fix that, then rerun"


@pytest.mark.parametrize("how", ["requested stop", "earlier failure"])
def test_a_halted_run_stops_nothing_and_says_why(how: str) -> None:
    ctx, cluster = stripe(
        {A: "4.2.0", B: "4.2.0"},
        {A: [ACTIVE], B: [STANDBY]},
        halted=lambda: EARLIER if how == "earlier failure" else None,
    )
    if how == "requested stop":
        halt.request_stop("interrupted (SIGINT)")
    why = (
        EARLIER
        if how == "earlier failure"
        else "interrupted (SIGINT); nothing was changed by this step; rerun"
    )
    failed = failure_of(upgrade_mirrors, ctx)
    assert failed.node == B
    assert str(failed).startswith(f"stop of {B} (stripe stripe1) not started: {why}")
    assert cluster.ran == []


def test_a_failure_found_during_the_standby_wait_stops_nothing() -> None:
    # Asked before the step (nothing yet), then again right before the stop.
    answers = iter([None, EARLIER])
    ctx, cluster = stripe(
        {A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [STANDBY]}, halted=lambda: next(answers)
    )
    with pytest.raises(
        StepFailed,
        match=rf"^stop of {A} \(the ACTIVE of stripe stripe1\) "
        f"not started: {EARLIER}",
    ):
        on_stripe(failover, ctx)
    assert cluster.ran == []


def test_a_mirror_still_syncing_is_confirmed_and_the_active_left_alone() -> None:
    """Re-executing the mirrors step while the upgraded mirror still syncs: the step's look
    plans its confirm-standby (a step of no segment: the op that looks first does it), which
    waits for the sync; nothing is stopped or installed, and the active is the failover
    step's."""
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [SYNCING, SYNCING, STANDBY]})
    records = on_stripe(upgrade_mirrors, ctx)
    assert [(r.action, r.node, r.skipped) for r in records] == [("confirm-standby", B, False)]
    assert records[0].did[0].startswith(f"confirmed {B} {STANDBY} after ")
    assert cluster.did("stop") == [] and cluster.did("install") == []
    assert (cluster.servers[A].answers, cluster.servers[B].answers) == ([ACTIVE], [STANDBY])


def test_the_mirrors_step_brings_back_a_down_mirror_and_leaves_the_active() -> None:
    """A mirror down on the target kit (an earlier run installed it): the mirrors step starts
    and confirms it (steps of no segment), then stops at the failover's first step."""
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.1"}, {A: [ACTIVE], B: [STANDBY]})
    cluster.servers[B].runs = None
    cluster.sync_looks = 2
    records = on_stripe(upgrade_mirrors, ctx)
    assert [(r.action, r.node) for r in records] == [("start", B), ("confirm-standby", B)]
    assert cluster.did("stop") == [] and cluster.did("install") == []
    assert (cluster.servers[A].answers, cluster.servers[B].answers) == ([ACTIVE], [STANDBY])


def test_the_failover_step_refuses_a_mirror_still_to_upgrade() -> None:
    ctx, cluster = stripe({A: "4.2.0", B: "4.2.0"}, {A: [ACTIVE], B: [STANDBY]})
    failed = failure_of(failover, ctx)
    assert failed.node == B
    assert str(failed) == (
        f"mirror {B} of stripe stripe1 is not on 4.2.1 yet and mirrors are upgraded before "
        "the active; run upgrade_mirrors_east_stripe1 (upgrade_mirrors) for it first "
        "(nothing was stopped)"
    )
    assert cluster.ran == []


def test_the_failover_step_fails_back_and_the_mirrors_step_does_not() -> None:
    """Both on the target, the preferred server a mirror: the mirrors step has nothing to do;
    the failover step, with failback asked, stops the ACTIVE once the preferred server is
    PASSIVE-STANDBY and brings the stopped one back as its mirror."""
    ctx, cluster = stripe({A: "4.2.1", B: "4.2.1"}, {A: [STANDBY], B: [ACTIVE]})
    ctx.options = replace(ctx.options, failback=True)
    cluster.sync_looks = 2
    mirrors = on_stripe(upgrade_mirrors, ctx)
    assert [(r.action, r.node, r.skipped) for r in mirrors] == [("upgrade", A, True)]
    assert cluster.ran == []
    records = on_stripe(failover, ctx)
    assert [(r.action, r.node) for r in records] == [
        ("failback-stop", B),
        ("start", B),
        ("confirm-standby", B),
    ]
    assert cluster.did("stop") == [("10.0.0.2", "stop")] and cluster.did("install") == []
    assert (cluster.servers[A].answers, cluster.servers[B].answers) == ([ACTIVE], [STANDBY])
