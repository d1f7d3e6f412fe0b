"""The ehcache-ee stand-in, shipped in ``ehcache-ee-<version>.jar``: a clustered cache.

Keys are spread over the stripes by a stable hash; each stripe is reached through the
toolkit runtime's :class:`tcclient.StripeClient`. One thread per stripe may use the cache
at the same time (a stripe's connection is not shared between threads).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.apis import tcclient
    from bm_upgrade.sandbox.kit_files.server.lib import tccommon
else:
    import tcclient
    import tccommon


class ClusteredCache:
    """A cache whose entries live on the stripes of a Terracotta Server Array."""

    def __init__(
        self,
        stripes: list[tuple[str, list[tuple[str, int]]]],
        *,
        client: str,
        stopping: threading.Event | None = None,
    ) -> None:
        self.version = tcclient.client_version()
        self.stopping = stopping or threading.Event()
        self.stripes = [
            tcclient.StripeClient(
                name, servers, client=client, version=self.version, stopping=self.stopping
            )
            for name, servers in stripes
        ]

    def stripe_of(self, key: str) -> int:
        """The index of the stripe that holds ``key``."""
        return tccommon.stripe_for_key(key, len(self.stripes))

    def put(self, key: str, value: str) -> str:
        """Write an entry; returns the stripe name once it is acknowledged."""
        stripe = self.stripes[self.stripe_of(key)]
        stripe.put(key, value)
        return stripe.stripe

    def get(self, key: str) -> str | None:
        """Read an entry from its stripe's active."""
        return self.stripes[self.stripe_of(key)].get(key)

    def close(self) -> None:
        """Drop every connection."""
        for stripe in self.stripes:
            stripe.close()
