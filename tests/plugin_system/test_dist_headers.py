"""Discovery reads a plugin distribution's name and version from the top of its metadata file (the ``email`` parser
behind ``Distribution.metadata`` was most of discovery's time); it must agree with that parser."""

from __future__ import annotations

from types import SimpleNamespace

import importlib_metadata
import pytest
from tg.backends.discovery import ENTRY_GROUP, HOOKSPEC_GROUP, _dist_headers


class FakeDist:
    def __init__(self, files: dict[str, str], name: str = "full-parse", version: str = "9.9"):
        self.files, self.metadata, self.version = files, {"Name": name}, version

    def read_text(self, filename: str) -> str | None:
        return self.files.get(filename)


def _entry(dist: object) -> importlib_metadata.EntryPoint:
    return SimpleNamespace(dist=dist)  # type: ignore[return-value]


def test_every_installed_plugin_reads_as_the_full_parse_reads_it() -> None:
    entries = [*importlib_metadata.entry_points(group=ENTRY_GROUP),
               *importlib_metadata.entry_points(group=HOOKSPEC_GROUP)]
    assert entries  # tg-core's own hookspec entry, at least
    for ep in entries:
        assert ep.dist is not None
        assert _dist_headers(ep) == (ep.dist.metadata["Name"], ep.dist.version)


@pytest.mark.parametrize(("files", "expected"), [
    ({"METADATA": "Metadata-Version: 2.1\nName: tg-mychip\nVersion: 1.2.3\nSummary: x\n\nName: not-this\n"},
     ("tg-mychip", "1.2.3")),
    ({"PKG-INFO": "Metadata-Version: 1.0\nVersion:  0.4 \nname: tg-old\n"}, ("tg-old", "0.4")),
    # a folded header line that looks like a Name header is no header of its own
    ({"METADATA": "Name: tg-fold\nSummary: one\n Name: no\nVersion: 2\n"}, ("tg-fold", "2")),
    # no Version before the body: the full parse decides
    ({"METADATA": "Name: tg-partial\n\nVersion: 1\n"}, ("full-parse", "9.9")),
    ({}, ("full-parse", "9.9")),
])
def test_headers_are_read_up_to_the_body(files: dict[str, str], expected: tuple[str, str]) -> None:
    assert _dist_headers(_entry(FakeDist(files))) == expected


def test_an_entry_without_a_distribution() -> None:
    assert _dist_headers(_entry(None)) == ("?", "?")
