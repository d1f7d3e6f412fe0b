"""What each procedure step found and did: the record a run keeps of every step.

A :class:`StepRecord` is built while the step runs (:class:`StepRecorder`) and frozen when it
ends, so a step that raises still leaves a record of what it had done so far (the caller
attaches it to the error's notes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepRecord:
    """One step of the procedure as it ran.

    Attributes:
        node: the server (or host) the step acted on.
        action: the plan's action name (``stop``, ``install``, ``failover-stop``, ...).
        found: the state the step saw before acting, in words.
        did: what it changed, one entry per change (empty when skipped).
        skipped: the observed state already satisfied the step.
        reason: why it was skipped.
        started, ended: unix times.
    """

    node: str
    action: str
    found: str
    did: tuple[str, ...] = ()
    skipped: bool = False
    reason: str = ""
    started: float = 0.0
    ended: float = 0.0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended - self.started)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["did"] = list(self.did)
        data["duration_s"] = round(self.duration_s, 3)
        return data

    def summary(self) -> str:
        """One line for logs and reports."""
        if self.skipped:
            return f"{self.action} {self.node}: skipped ({self.reason})"
        did = "; ".join(self.did) or "nothing to change"
        return f"{self.action} {self.node}: {did} [{self.duration_s:.1f} s]"


@dataclass
class StepRecorder:
    """Collects a step's findings and changes while it runs; :meth:`record` freezes them."""

    node: str
    action: str
    found: str = ""
    did: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def saw(self, what: str) -> None:
        """Add to what the step found (joined with '; ')."""
        self.found = f"{self.found}; {what}" if self.found else what

    def done(self, what: str) -> None:
        """Note one change the step made."""
        self.did.append(what)

    def record(self) -> StepRecord:
        return StepRecord(
            node=self.node,
            action=self.action,
            found=self.found,
            did=tuple(self.did),
            started=self.started,
            ended=time.time(),
        )


def skipped(node: str, action: str, found: str, reason: str) -> StepRecord:
    """A record for a step the observed state already satisfied."""
    now = time.time()
    return StepRecord(
        node=node, action=action, found=found, skipped=True, reason=reason, started=now, ended=now
    )
