"""The Database Backup Utility (backup-data), both sides.

The server side (:func:`take`, behind ``POST /tc-management-api/v2/agents/backups?name=N`` on
the management port, the path of Terracotta's REST agent): an ACTIVE-COORDINATOR of a
restartable cluster copies what it persists (``<data>/objectdb`` and ``tc-server-meta.json``,
see tcstore.py) to ``<data-backup>/<name>/`` while writes wait, and answers the backup entity
``{"sourceId", "name", "status", "error"}``. ``<data-backup>`` comes from the server's
tc-config; unset, it is ``data-backup`` in the tc-config's folder.

The command side (:func:`main`, run by ``tools/management-console/bin/backup-data.sh``):
``backup-data.sh [-l <url>] [-n <name>] [-a <agent>]`` with the product's connection options
for a secured management port (``-u/--username``, ``-w/--password``, read from standard input
when ``-u`` comes without it, ``--secured`` or an ``https://`` URL, ``-k/--ignoreSSLCert``:
docs/terracotta.md, "Secured clusters"); ``-l`` defaults to ``http://localhost:9889`` as the
product's does. It prints one line per backup entity,
``Backup <name> of server <sourceId>: COMPLETE`` or ``...: FAILED (<error>)``, and exits 0
when every one completed, 1 otherwise (also when nothing answers at ``-l``), 2 on a usage
error. See ENGINE.md for what of this is (assumed).
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bm_upgrade.sandbox.kit_files.server.lib import tcsecurity
    from bm_upgrade.sandbox.kit_files.server.lib.tcserver import Server
else:
    import tcsecurity

PATH = "/tc-management-api/v2/agents/backups"
DEFAULT_URL = "http://localhost:9889"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def default_name() -> str:
    """``backup.<yyyyMMdd.HHmmss>`` (assumed)."""
    return "backup." + datetime.datetime.now().strftime("%Y%m%d.%H%M%S")


def backup_dir(server: Server) -> Path:
    """The server's ``<data-backup>``, relative to the tc-config's folder; default
    ``data-backup`` there."""
    value = "data-backup"
    root = ET.fromstring(server.config_text)  # noqa: S314 - the server's own config
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "server" and element.get("name") == server.name:
            for child in element:
                if child.tag.rsplit("}", 1)[-1] == "data-backup" and (child.text or "").strip():
                    value = (child.text or "").strip()
    path = Path(value)
    return path if path.is_absolute() else server.config_path.parent / path


def take(server: Server, name: str | None) -> dict[str, Any]:
    """Back up ``server``'s persisted data as ``name``; the backup entity."""
    name = name or default_name()
    entity: dict[str, Any] = {"sourceId": server.name, "name": name, "status": FAILED}
    if not _NAME.match(name):
        return {**entity, "error": f"backup name {name!r} is not a plain folder name"}
    if not server.store.persistent:
        return {**entity, "error": "restartable mode is not enabled in the tc-config"}
    if server.state != server.ACTIVE:
        return {**entity, "error": f"server {server.name} is {server.state}, not the active"}
    target = backup_dir(server) / name
    if target.exists():
        return {**entity, "error": f"{target} already exists"}
    try:
        server.store.copy_to(target)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        return {**entity, "error": f"cannot write {target}: {exc.strerror or exc}"}
    server.log(f"Backup {name} written to {target}")
    server.event("data_backup", server=server.name, name=name, path=str(target))
    return {**entity, "status": COMPLETE, "error": None, "path": str(target)}


def _usage(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    print(
        "usage: backup-data.sh [-l <tms-host:port>] [-n <name>] [-a <agent>] "
        "[-u <user> [-w <password>] [--secured] [-k]]",
        file=sys.stderr,
    )
    return 2


def main(argv: list[str]) -> int:
    """``backup-data.sh`` (see the module)."""
    options = {"-l": DEFAULT_URL, "-n": "", "-a": ""}
    aliases = {"--username": "-u", "-username": "-u", "--password": "-w", "-password": "-w"}
    secured = ignore_untrusted = False
    args = list(argv)
    while args:
        flag = args.pop(0)
        flag = aliases.get(flag, flag)
        if flag in ("--secured", "-secured"):
            secured = True
            continue
        if flag in ("-k", "--ignoreSSLCert", "-ignoreSSLCert"):
            ignore_untrusted = True
            continue
        if flag not in (*options, "-u", "-w"):
            return _usage(f"unknown option {flag}")
        if not args:
            return _usage(f"{flag} needs a value")
        options[flag] = args.pop(0)
    url = options["-l"] if "://" in options["-l"] else "http://" + options["-l"]
    if secured and url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    headers = {}
    if "-u" in options:
        # No console over SSH: the password is read from standard input (assumed).
        password = options["-w"] if "-w" in options else sys.stdin.readline().rstrip("\r\n")
        headers["Authorization"] = tcsecurity.basic_header(options["-u"], password)
    context = tcsecurity.client_context(ignore_untrusted) if url.startswith("https") else None
    query = f"?name={urllib.parse.quote(options['-n'])}" if options["-n"] else ""
    target = url.rstrip("/") + PATH + query
    request = urllib.request.Request(target, data=b"", method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=600, context=context) as answer:  # noqa: S310
            entities = json.loads(answer.read() or b"[]")
    except urllib.error.HTTPError as exc:
        print(f"Backup failed: {url} answered {exc.code}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"Unable to connect to {url} ({getattr(exc, 'reason', exc)})")
        return 1
    ok = bool(entities)
    for entity in entities:
        line = f"Backup {entity.get('name')} of server {entity.get('sourceId')}: "
        if entity.get("status") == COMPLETE:
            print(line + COMPLETE)
        else:
            ok = False
            print(line + f"{FAILED} ({entity.get('error')})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
