"""Secured regions (topology ``secured: true``): what `sandbox up` makes for them.

A secured region's servers speak HTTPS on their management port with a certificate signed by
the sandbox's own CA, and ask for a user and password (ENGINE.md, "Secured mode"). Under
``DIR/security/``:

- ``ca.pem`` (the CA the inventory's ``ca_file`` names) and ``ca.key``;
- ``management-password``: the admin user's password, mode 0600 (the inventory's
  ``password_file``; it is written nowhere else);
- ``<region>/keystore.pem`` (the servers' certificate and key, for every server host's
  address), ``<region>/keychain.tkc`` (mode 0600), ``<region>/auth.ini`` (the users).

Each host of a secured server also trusts the CA in its Java's ``jre/lib/security/cacerts``,
as an operator imports a self-signed certificate into the JDK, so the kit's scripts check the
certificate without ``-k``.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ADMIN_USER = "bm-admin"
SERVER_USER = "tc-server"
PASSWORD_FILE = "management-password"  # noqa: S105 - a file name


@dataclass(frozen=True)
class ManagementAuth:
    """How the sandbox itself reads a secured server's REST stat."""

    user: str
    password: str
    ca_file: Path


def security_dir(directory: Path) -> Path:
    return directory / "security"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    addresses: list[str],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0] if issuer else subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if addresses:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The sandbox's CA (made once per sandbox)."""
    folder = security_dir(directory)
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("bm_upgrade sandbox CA", key, None, [])
    _write_secret(key_path, _pem_key(key).decode("ascii"))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def management_password(directory: Path) -> str:
    """The admin user's password (made once per sandbox, kept in its 0600 file)."""
    path = security_dir(directory) / PASSWORD_FILE
    if not path.exists():
        _write_secret(path, secrets.token_urlsafe(18) + "\n")
    return path.read_text(encoding="utf-8").strip()


def secure_region(directory: Path, region: str, addresses: list[str]) -> dict[str, str]:
    """Make a region's keystore, keychain and users; returns the tc-config ``security``
    values (``certificate``, ``keychain_url``, ``auth_url``, ``user``)."""
    _, ca_key = _ca(directory)
    folder = security_dir(directory) / region
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(f"{region} servers", key, ("bm_upgrade sandbox CA", ca_key), addresses)
    keystore = folder / "keystore.pem"
    _write_secret(
        keystore,
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        + _pem_key(key).decode("ascii"),
    )
    _write_secret(folder / "keychain.tkc", f"jks:{region}@{keystore} = {secrets.token_hex(8)}\n")
    password = management_password(directory)
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    server_digest = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    (folder / "auth.ini").write_text(
        f"[users]\n{ADMIN_USER} = {digest}, admin\n{SERVER_USER} = {server_digest}, terracotta\n",
        encoding="utf-8",
    )
    return {
        "certificate": f"jks:{region}@{keystore}",
        "keychain_url": (folder / "keychain.tkc").as_uri(),
        "auth_url": (folder / "auth.ini").as_uri(),
        "user": SERVER_USER,
    }


def trust_ca(directory: Path, java_home: Path) -> None:
    """Add the sandbox's CA to a host's Java trust store (``jre/lib/security/cacerts``)."""
    target = java_home / "jre" / "lib" / "security" / "cacerts"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((security_dir(directory) / "ca.pem").read_bytes())


def is_secured(directory: Path, region: str) -> bool:
    return (security_dir(directory) / region / "keystore.pem").is_file()


def auth_for(directory: Path, region: str) -> ManagementAuth | None:
    """How the sandbox reads a server of ``region`` (None: not secured)."""
    if not is_secured(directory, region):
        return None
    return ManagementAuth(
        ADMIN_USER, management_password(directory), security_dir(directory) / "ca.pem"
    )


def inventory_entry(directory: Path) -> dict[str, Any]:
    """A secured region's ``management_security`` in the inventory `sandbox up` writes."""
    folder = security_dir(directory)
    return {
        "user": ADMIN_USER,
        "password_file": str(folder / PASSWORD_FILE),
        "ca_file": str(folder / "ca.pem"),
    }
