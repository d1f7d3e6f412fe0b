"""Work done side by side, one thread per key, with a result or an error per key.

A batch of clients (one thread per client host) and a stage of the WAN cycle (one thread per
orchestrator step) work this way over any :class:`~bm_upgrade.procedure.waits.Hosts`, the
real pool or a unit test's fake: one key's failure does not stop the others, and the caller
raises the first failure with the others as notes (:meth:`GroupResult.values`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.remote.pool import GroupResult

T = TypeVar("T")


def side_by_side(work: Mapping[str, Callable[[], T]], *, at_most: int) -> GroupResult[T]:
    """Run each of ``work`` in its own thread, at most ``at_most`` at once.

    Returns:
        Per key, in the order of ``work``: its result, or the error of bm_upgrade's tree it
        raised.

    Raises:
        UserError: one that a key raised (a corrupt known_hosts file is no key's failure:
            the operator sees one message to fix it, not every key "failed").
        Exception: any other exception, which is a bug.
    """
    outcome: GroupResult[T] = GroupResult()
    if not work:
        return outcome

    def one(key: str) -> T | BmUpgradeError:
        try:
            return work[key]()
        except UserError:
            raise
        except BmUpgradeError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(at_most, len(work)))) as ex:
        answers = dict(zip(work, ex.map(one, work), strict=True))
    for key, answer in answers.items():
        if isinstance(answer, BmUpgradeError):
            outcome.errors[key] = answer
        else:
            outcome.results[key] = answer
    return outcome
