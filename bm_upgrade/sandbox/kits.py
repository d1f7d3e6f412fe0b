"""Build and unpack the sandbox's BigMemory Max kits (``bigmemory-max-<version>.tar.gz``).

A kit holds ``server/bin`` (the scripts), ``server/lib`` (the server program and
``tc-version.properties``), the client "jars" under ``apis/`` (real zip files with the client
library and a manifest carrying the version) and ``config-samples/``; never a license. The
bytes are deterministic for a version (fixed mtimes and owners, sorted entries, gzip mtime 0),
so the sha256 written to the inventory is stable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
import tempfile
import zipfile
from datetime import date, timedelta
from pathlib import Path

from bm_upgrade.sandbox.kit_files.server.lib import tccommon

KIT_FILES = Path(__file__).resolve().parent / "kit_files"
FIXED_MTIME = 1436955336  # 2015-07-15 10:15:36 UTC, the 4.2.x era
_ZIP_TIME = (2015, 7, 15, 10, 15, 36)
BULK_BYTES = 768 * 1024
"""Size of the file standing for the jars of a real kit (``server/lib/tc-bulk.dat``)."""


class KitError(Exception):
    """A kit cannot be built or unpacked; the message names the file and the fix."""


def ehcache_version(version: str) -> str:
    """The ehcache-ee version shipped with a kit: 4.2.N[.x] -> 2.10.N[.x] (the one mapping)."""
    parts = version.split(".")
    return ".".join(["2", "10", *parts[2:]]) if len(parts) > 2 else "2.10.0"


def toolkit_jar_name(version: str) -> str:
    """``terracotta-toolkit-runtime-ee-<version>.jar``."""
    return f"terracotta-toolkit-runtime-ee-{version}.jar"


def ehcache_jar_name(version: str) -> str:
    """``ehcache-ee-<ehcache version>.jar`` of the kit ``version``."""
    return f"ehcache-ee-{ehcache_version(version)}.jar"


def version_properties(version: str) -> str:
    """``server/lib/tc-version.properties``: version, build date, revision, branch."""
    parts = version.split(".")
    patch = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    built = date(2015, 4, 1) + timedelta(days=45 * patch)
    digest = hashlib.sha1(version.encode("utf-8")).hexdigest()  # noqa: S324 - not security
    clock = (
        f"{int(digest[8:10], 16) % 24:02d}{int(digest[10:12], 16) % 60:02d}"
        f"{int(digest[12:14], 16) % 60:02d}"
    )
    return (
        f"version={version}\n"
        f"build.timestamp={built.strftime('%Y%m%d')}-{clock}\n"
        f"build.revision={digest[:8]}\n"
        f"build.branch={tccommon.major_minor(version)}.x\n"
        f"ehcache.version={ehcache_version(version)}\n"
    )


def _jar(title: str, version: str, files: dict[str, bytes]) -> bytes:
    manifest = (
        f"Manifest-Version: 1.0\r\nImplementation-Title: {title}\r\n"
        f"Implementation-Version: {version}\r\nImplementation-Vendor: Terracotta, Inc.\r\n"
        "\r\n"
    ).encode("ascii")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        for name, data in sorted({"META-INF/MANIFEST.MF": manifest, **files}.items()):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            jar.writestr(info, data)
    return buffer.getvalue()


def kit_contents(version: str) -> dict[str, tuple[bytes, int]]:
    """Every file of a kit: path under the kit root -> (bytes, mode)."""
    lib = KIT_FILES / "server" / "lib"
    files: dict[str, tuple[bytes, int]] = {}
    for script in sorted((KIT_FILES / "server" / "bin").glob("*.sh")):
        files[f"server/bin/{script.name}"] = (script.read_bytes(), 0o755)
    for script in sorted((KIT_FILES / "tools" / "management-console" / "bin").glob("*.sh")):
        files[f"tools/management-console/bin/{script.name}"] = (script.read_bytes(), 0o755)
    for source in sorted([*lib.glob("*.py"), *lib.glob("*.sh")]):
        files[f"server/lib/{source.name}"] = (source.read_bytes(), 0o644)
    files["server/lib/tc-version.properties"] = (version_properties(version).encode(), 0o644)
    apis = KIT_FILES / "apis"
    toolkit = _jar(
        "terracotta-toolkit-runtime-ee",
        version,
        {
            "tcclient.py": (apis / "tcclient.py").read_bytes(),
            "tccommon.py": (lib / "tccommon.py").read_bytes(),
        },
    )
    ehcache = _jar(
        "ehcache-ee",
        ehcache_version(version),
        {
            "tcehcache.py": (apis / "tcehcache.py").read_bytes(),
        },
    )
    files[f"apis/toolkit/lib/{toolkit_jar_name(version)}"] = (toolkit, 0o644)
    files[f"apis/ehcache/lib/{ehcache_jar_name(version)}"] = (ehcache, 0o644)
    for sample in sorted((KIT_FILES / "config-samples").glob("*")):
        files[f"config-samples/{sample.name}"] = (sample.read_bytes(), 0o644)
    # The bulk of a real kit (about 300 MB of jars): incompressible bytes, so an upload spans
    # several SFTP write requests and a dropped connection leaves a partial file to resume.
    bulk = hashlib.shake_256(f"bigmemory-max-{version}".encode()).digest(BULK_BYTES)
    files["server/lib/tc-bulk.dat"] = (bulk, 0o644)
    files["README.txt"] = (
        f"BigMemory Max {version}\n\nThe license key "
        "(terracotta-license.key) is delivered separately; place it in "
        "this folder.\n".encode(),
        0o644,
    )
    return files


def build_kit(version: str, out_dir: Path) -> Path:
    """Write ``out_dir/bigmemory-max-<version>.tar.gz`` (deterministic bytes); return its path."""
    top = f"bigmemory-max-{version}"
    files = kit_contents(version)
    folders = {top}
    for path in files:
        parts = path.split("/")[:-1]
        folders.update(f"{top}/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(f, None) for f in folders] + [(f"{top}/{p}", files[p]) for p in files]
        for name, content in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content[0]), content[1]
                tar.addfile(info, io.BytesIO(content[0]))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{top}.tar.gz"
    with (
        target.open("wb") as stream,
        gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0) as gz,
    ):
        gz.write(raw.getvalue())
    return target


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file (what the inventory records for a kit)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack_kit(tarball: Path, install_dir: Path) -> None:
    """Unpack a kit so that ``install_dir`` IS the kit root (it must not exist or be empty)."""
    if install_dir.exists() and any(install_dir.iterdir()):
        raise KitError(f"{install_dir} is not empty; unpack a kit into a new folder")
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=install_dir.parent, prefix=".unpack-") as tmp:
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise KitError(f"cannot unpack {tarball}: {exc}") from None
        tops = list(Path(tmp).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise KitError(f"{tarball} must hold exactly one top folder (the kit root)")
        if install_dir.exists():
            install_dir.rmdir()
        shutil.move(str(tops[0]), str(install_dir))
