"""The cluster inventory: one YAML file describes one BigMemory Max cluster.

Models are frozen pydantic v2 models that forbid unknown keys. :func:`load_inventory` reads a
file and raises :class:`~bm_upgrade.errors.InventoryError` carrying *every* problem found, each
naming the field path (``regions[1].stripes[0].servers[2].host``), what is wrong and the fix.
Secrets never appear inline: the SSH key is a file path, its passphrase comes from an
environment variable or a file.

- nodes.py: kits, regions, stripes, servers, clients, orchestrators (field-level checks).
- settings.py: SSH access, maintenance window, timeouts, policy.
- cluster.py: :class:`Inventory`, its views (every stripe, server, client, orchestrator,
  host) and its JSON Schema.
- kitroot.py: :class:`KitRoot`, the paths derived from a node's ``install_dir``.
- cross_field.py: the checks no single field shows (unique names, ports, WAN, kits).
- loading.py: reading a file (bounded YAML) and turning pydantic's errors into located issues.
"""

from bm_upgrade.inventory.cluster import Inventory, json_schema
from bm_upgrade.inventory.kitroot import KitRoot
from bm_upgrade.inventory.loading import issues_from_validation, load_inventory, parse_inventory
from bm_upgrade.inventory.nodes import (
    NAME_PATTERN,
    VERSION_PATTERN,
    Client,
    Kit,
    Orchestrator,
    Region,
    Server,
    Stripe,
    major_minor,
)
from bm_upgrade.inventory.settings import JumpHost, Policy, SshSettings, Timeouts, Window

__all__ = [
    "NAME_PATTERN",
    "VERSION_PATTERN",
    "Client",
    "Inventory",
    "JumpHost",
    "Kit",
    "KitRoot",
    "Orchestrator",
    "Policy",
    "Region",
    "Server",
    "SshSettings",
    "Stripe",
    "Timeouts",
    "Window",
    "issues_from_validation",
    "json_schema",
    "load_inventory",
    "major_minor",
    "parse_inventory",
]
