"""`sandbox up | down | verify`: a whole BigMemory Max look-alike cluster on this machine.

``up`` (start.py) reserves a loopback block, lays out one root folder per host under
``DIR/hosts`` and builds and serves the kits (layout.py), starts one sshd per host, the
servers, the client apps and the WAN orchestrators (launch.py, ``wan.py``), and writes
``DIR/inventory.yaml`` (inventory_file.py). ``down`` (stop.py) stops everything by PID, then
anything still running from under DIR. ``verify`` (ledgers.py) reads every ledger back from
the current actives. Layout of DIR::

    sandbox.json  journal.jsonl  inventory.yaml  terracotta-license.key
    kits/bigmemory-max-<v>.tar.gz (+ .sha256)    served over HTTP on <block>.254:8080
    ssh/id_ed25519[.pub] ssh/known_hosts ssh/cmdwrap.pyc
    hosts/<address>/{etc,opt,var,logs,run}       one per server / client / orchestrator
    run/*.pid  ledgers/<client>.jsonl  faults/  cache/ (kits unpacked for client apps)
"""

from bm_upgrade.sandbox.cluster.inventory_file import write_inventory
from bm_upgrade.sandbox.cluster.launch import SandboxError
from bm_upgrade.sandbox.cluster.ledgers import verify
from bm_upgrade.sandbox.cluster.start import up
from bm_upgrade.sandbox.cluster.stop import down, recorded_pids
from bm_upgrade.sandbox.protocol import server_stat

__all__ = [
    "SandboxError",
    "down",
    "recorded_pids",
    "server_stat",
    "up",
    "verify",
    "write_inventory",
]
