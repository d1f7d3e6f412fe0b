"""A secured region (topology ``secured: true``; ENGINE.md, "Secured mode"): the management
port speaks HTTPS with a certificate of the sandbox's CA and asks for a user and password,
and the kit's scripts take the product's connection options and print its blocks."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.conftest import Sandbox, running_sandbox

STAT = "/tc-management-api/v2/local/stat"
TOPOLOGY = """\
name: locked
version: 4.2.0
kits: [4.2.0]
persistent: false
regions:
  - name: vault
    stripes: 1
    mirrors: 1
    clients: 0
    secured: true
timing: {start_s: 0.1, election_s: 0.3, sync_s: 0.2}
"""


@pytest.fixture(scope="module")
def secured(sandbox_tmp: Path) -> Iterator[Sandbox]:
    topology = sandbox_tmp / "secured-topology.yaml"
    topology.write_text(TOPOLOGY, encoding="utf-8")
    with running_sandbox(sandbox_tmp, "sandbox-secured", str(topology)) as sandbox:
        yield sandbox


def first(sb: Sandbox) -> dict[str, object]:
    return sb.server("vault-s1-a")


def password(sb: Sandbox) -> str:
    return (sb.directory / "security" / "management-password").read_text().strip()


def get(url: str, *, auth: tuple[str, str] | None, cafile: Path | None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def script(sb: Sandbox, name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    server = first(sb)
    install = Path(str(server["install_dir"]))
    java_home = install.parents[2] / "opt" / "java"
    return subprocess.run(
        [str(install / "server" / "bin" / name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "JAVA_HOME": str(java_home)},
    )


def test_secured_files_and_inventory(secured: Sandbox) -> None:
    folder = secured.directory / "security"
    assert (folder / "management-password").stat().st_mode & 0o777 == 0o600
    assert (folder / "vault" / "keychain.tkc").stat().st_mode & 0o777 == 0o600
    inventory = secured.inventory.read_text(encoding="utf-8")
    assert "management_security:" in inventory
    assert f"password_file: {folder / 'management-password'}" in inventory
    assert password(secured) not in inventory
    config = Path(str(first(secured)["install_dir"])).parents[2] / "etc" / "tc-config.xml"
    text = config.read_text(encoding="utf-8")
    assert '<servers secure="true">' in text
    assert "<realm>com.tc.net.core.security.ShiroIniRealm</realm>" in text
    assert "<certificate>jks:vault@" in text


def test_https_with_the_sandbox_ca_and_401_without_credentials(secured: Sandbox) -> None:
    server = first(secured)
    url = f"https://{server['host']}:{server['management_port']}{STAT}"
    ca = secured.directory / "security" / "ca.pem"
    code, body = get(url, auth=None, cafile=ca)
    assert code == 401
    code, _ = get(url, auth=("bm-admin", "wrong"), cafile=ca)
    assert code == 401
    code, body = get(url, auth=("bm-admin", password(secured)), cafile=ca)
    assert code == 200
    assert json.loads(body)["state"] == "ACTIVE-COORDINATOR"
    # The certificate is the sandbox CA's: without that CA it is not trusted.
    with pytest.raises(urllib.error.URLError) as err:
        get(url, auth=("bm-admin", password(secured)), cafile=None)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_server_stat_prints_the_products_blocks(secured: Sandbox) -> None:
    server = first(secured)
    target = f"{server['host']}:{server['management_port']}"
    host = str(server["host"])
    wrong = script(
        secured, "server-stat.sh", "-s", target, "--secured", "-u", "bm-admin", "-w", "x"
    )
    assert wrong.returncode == 0
    assert wrong.stdout == (
        f"{host}.health: unknown\n{host}.role: unknown\n{host}.state: unknown\n"
        f"{host}.port: {server['management_port']}\n{host}.group name: unknown\n"
        f"{host}.error: Authentication error, check username/password and try again.\n\n"
    )
    # -w left out: the password is read from standard input.
    good = script(
        secured,
        "server-stat.sh",
        "-s",
        target,
        "--secured",
        "-u",
        "bm-admin",
        stdin=password(secured) + "\n",
    )
    assert good.stdout.splitlines()[:3] == [
        "vault-s1-a.health: OK",
        "vault-s1-a.role: ACTIVE",
        "vault-s1-a.state: ACTIVE-COORDINATOR",
    ]
    down = script(secured, "server-stat.sh", "-s", f"{host}:9", "--secured")
    assert down.stdout.splitlines()[5] == (
        f"{host}.error: Connection refused to {host}:9. Is the TSA running?"
    )
    assert down.stdout.splitlines()[0] == f"{host}.health: unknown"
    # Plain HTTP against the TLS port: the product's tool ends with the exception, exit 1.
    plain = script(secured, "server-stat.sh", "-s", target, "-u", "bm-admin", "-w", "x")
    assert plain.returncode == 1 and plain.stdout == ""


def test_stop_without_the_password_is_refused(secured: Sandbox) -> None:
    server = first(secured)
    config = Path(str(server["install_dir"])).parents[2] / "etc" / "tc-config.xml"
    result = script(
        secured,
        "stop-tc-server.sh",
        "-f",
        str(config),
        "-n",
        "vault-s1-b",
        "-u",
        "bm-admin",
        "-w",
        "x",
    )
    assert result.returncode == 1
    assert "Authentication failure. Invalid username/password." in result.stdout
    code, body = get(
        f"https://{server['host']}:{server['management_port']}{STAT}",
        auth=("bm-admin", password(secured)),
        cafile=secured.directory / "security" / "ca.pem",
    )
    assert code == 200 and json.loads(body)["state"] == "ACTIVE-COORDINATOR"
