"""Bad input at scale (hypothesis): generated inventory files, valid and broken, through
`bm-upgrade validate`. A valid one prints one line and exits 0; anything else exits 2 with
the documented block (a header naming the file and the count, one line a problem, each naming
the file), never a traceback. Derandomized and without an example database, so every run
tries the same cases."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bm_upgrade import bounded_yaml
from tests.unit.bad_input import (
    assert_refused_in_one_message,
    bm,
    broken_inventories,
    valid_inventories,
)
from tests.unit.inventories import minimal

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bm-upgrade-bad-input-") as name:
        yield Path(name)


def validate_bytes(folder: Path, content: bytes) -> tuple[str, Any]:
    path = folder / "inventory.yaml"
    path.write_bytes(content)
    return str(path), bm(["validate", str(path)])


def dumped(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


@SETTINGS
@given(data=valid_inventories())
def test_every_valid_inventory_validates_in_one_line(folder: Path, data: dict[str, Any]) -> None:
    path, ran = validate_bytes(folder, dumped(data))
    assert (ran.code, ran.err) == (0, ""), ran
    assert ran.out == (
        f"{path}: valid inventory of cluster {data['cluster']!r} ({len(data['regions'])} "
        f"region(s), {sum(len(st['servers']) for r in data['regions'] for st in r['stripes'])} "
        f"server(s), target {data['target_version']})\n"
    )


@SETTINGS
@given(data=broken_inventories())
def test_a_broken_inventory_is_refused_field_by_field(folder: Path, data: Any) -> None:
    path, ran = validate_bytes(folder, dumped(data))
    if ran.code == 0:  # the change happened to leave it valid (a bool for a bool)
        assert ran.err == "" and ran.out.count("\n") == 1, ran
        return
    assert_refused_in_one_message(ran, path)
    assert ran.out == ""


@SETTINGS
@given(text=st.text(st.characters(codec="utf-8"), max_size=300))
def test_any_text_is_valid_or_refused_in_one_message(folder: Path, text: str) -> None:
    path, ran = validate_bytes(folder, text.encode("utf-8"))
    assert ran.code == 2, ran  # no text this short is a whole inventory
    assert_refused_in_one_message(ran, path)


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_refused_in_one_message(folder: Path, raw: bytes) -> None:
    path, ran = validate_bytes(folder, raw)
    assert_refused_in_one_message(ran, path)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    return "\n".join(lines) + "\n"


def _example(**fields: Any) -> bytes:
    return dumped(minimal(**fields))


CASES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the file is empty"),
    "only a comment": (b"# nothing here\n", "the file is empty"),
    "a list at the top": (b"- cluster: x\n", "the top level must be a mapping"),
    "a scalar at the top": (b"42\n", "not a int"),
    "not UTF-8": (b"cluster: \xff\xfe\n", "encoding (UTF-8)"),
    "UTF-16": ("cluster: x\n".encode("utf-16"), "encoding (UTF-8)"),
    "larger than the cap": (
        b"# " + b"x" * bounded_yaml.MAX_BYTES + b"\n",
        "larger than 1024 KiB",
    ),
    "aliases past the cap": (billion_laughs().encode(), "expand to more than"),
    "an alias inside itself": (b"a: &a [*a]\n", "endlessly"),
    "nested too deeply": (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "YAML"),
    "two documents": (b"cluster: a\n---\ncluster: b\n", "malformed YAML"),
    "a Python tag": (b"cluster: !!python/object:os.system {}\n", "malformed YAML"),
    "an unhashable key": (b"? [a, b]\n: c\n", "malformed YAML"),
    "a tab indent": (b"cluster:\n\t- x\n", "malformed YAML"),
    "duplicate names": (
        _example(
            regions=[
                {
                    "name": "east",
                    "stripes": [
                        {
                            "name": "stripe1",
                            "servers": [
                                {
                                    "name": "tsa",
                                    "host": "10.0.0.1",
                                    "install_dir": "/opt/kit",
                                    "tc_config": "/etc/tc.xml",
                                    "data_dir": "/var/d1",
                                },
                                {
                                    "name": "tsa",
                                    "host": "10.0.0.2",
                                    "install_dir": "/opt/kit",
                                    "tc_config": "/etc/tc.xml",
                                    "data_dir": "/var/d2",
                                },
                            ],
                        }
                    ],
                }
            ]
        ),
        "is already used at regions[0].stripes[0].servers[0].name",
    ),
    "a relative path": (
        _example(license_file="keys/terracotta-license.key"),
        "",
    ),
    "a path with ..": (
        dumped(
            {
                **minimal(),
                "regions": [
                    {
                        **minimal()["regions"][0],
                        "clients": [
                            {**minimal()["regions"][0]["clients"][0], "lib_dir": "/a/../b"}
                        ],
                    }
                ],
            }
        ),
        "is not normalised",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_of_bad_file_is_refused_in_one_message(folder: Path, case: str) -> None:
    content, said = CASES[case]
    path, ran = validate_bytes(folder, content)
    if case == "a relative path":  # the license file is local: a relative path is allowed
        assert ran.code == 0, ran
        return
    assert_refused_in_one_message(ran, path)
    assert said in ran.err, ran
