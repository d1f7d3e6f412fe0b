"""A node's kit root (its ``install_dir``) and every path the tool derives from it.

The kit root is the folder holding ``server/bin`` and the license key. Its parent is the
node's work folder: the staged kit, the previous kits kept for a rollback, the scratch
folders of a swap and a detached start's console log live there, beside the kit root and on
the same file system, so moving a kit in or out is a rename (docs/architecture.md).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

LICENSE_FILE_NAME = "terracotta-license.key"
"""The license key's name inside a kit root (the kit's own scripts look for it there)."""
STAGING_DIR_NAME = ".bm-upgrade-staging"
PREVIOUS_DIR_NAME = ".bm-upgrade-previous"
WORK_DIR_NAME = ".bm-upgrade-work"
CONSOLE_SCRIPTS = frozenset({"backup-data.sh"})
"""Scripts the kit keeps under ``tools/management-console/bin`` (docs/terracotta.md, "Database
Backup Utility")."""


@dataclass(frozen=True)
class KitRoot:
    """One kit root, written without a trailing ``/`` (inventory paths are absolute and
    normalised, one trailing ``/`` allowed: :func:`KitRoot.of` drops it)."""

    path: str

    @classmethod
    def of(cls, install_dir: str) -> KitRoot:
        return cls(install_dir.rstrip("/") or "/")

    @property
    def name(self) -> str:
        """The kit root's own folder name (``bigmemory-max``)."""
        return posixpath.basename(self.path)

    @property
    def parent(self) -> str:
        """The work folder the kit root lives in."""
        return posixpath.dirname(self.path) or "/"

    def script(self, name: str) -> str:
        """One of the kit's scripts: ``<root>/server/bin/<name>``, or the management console's
        ``<root>/tools/management-console/bin/<name>`` for those listed in
        :data:`CONSOLE_SCRIPTS`."""
        folder = ("tools", "management-console") if name in CONSOLE_SCRIPTS else ("server",)
        return posixpath.join(self.path, *folder, "bin", name)

    @property
    def license(self) -> str:
        return posixpath.join(self.path, LICENSE_FILE_NAME)

    @property
    def staging(self) -> str:
        """Where ``stage_kit`` unpacks the target kit and puts its license."""
        return posixpath.join(self.parent, STAGING_DIR_NAME)

    @property
    def previous_dir(self) -> str:
        """Where replaced kit roots are kept for a rollback."""
        return posixpath.join(self.parent, PREVIOUS_DIR_NAME)

    def previous_kit(self, version: str | None) -> str:
        """Where this kit root goes when replaced: ``<previous_dir>/<name>-<version>``."""
        return posixpath.join(self.previous_dir, f"{self.name}-{version or 'unknown'}")

    def newest_previous(self, listing: list[str]) -> str | None:
        """The first of ``listing`` (paths, newest first) that is a kept previous kit of this
        kit root: ``<name>-<version>`` or ``<name>-unknown`` in :attr:`previous_dir`."""
        kept = re.compile(rf"^{re.escape(self.name)}-(?:\d+(?:\.\d+)+|unknown)$")
        return next(
            (
                path
                for path in listing
                if posixpath.dirname(path) == self.previous_dir
                and kept.match(posixpath.basename(path))
            ),
            None,
        )

    def work_dir(self, node: str) -> str:
        """One node's scratch folder for a swap (never shared, even by nodes that wrongly
        share a kit root)."""
        return posixpath.join(self.parent, WORK_DIR_NAME, node)

    def console_log(self, node: str) -> str:
        """The default console log of a node started detached from this kit root."""
        return posixpath.join(self.parent, f"{node}.console.log")

    def holds(self, path: str) -> bool:
        """Whether ``path`` (absolute, normalised) is this kit root or lies under it."""
        path = path.rstrip("/") or "/"
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")

    def relative(self, path: str) -> str | None:
        """``path`` relative to the kit root when it lies strictly under it, else None."""
        prefix = self.path.rstrip("/") + "/"
        return path[len(prefix) :] or None if path.startswith(prefix) else None
