"""Unit tests for the pieces of cachestack.aws.valkey_cluster that move keys: reading key
names back from the cli's quoted output (GETKEYSINSLOT with --no-raw) and quoting them for
MIGRATE on the cli's standard input, so any key (spaces, quotes, newlines, bytes that are
not UTF-8) moves intact. The cli's real output is in the samples; the module against real
nodes is tests/integration/cache_cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.modules import (  # noqa: E402
    valkey_cluster as vc,
)

# Lines redis-cli 7.0 --no-raw printed for GETKEYSINSLOT (keys with a space, quotes, a newline,
# a 0xff byte), put together as three replies, the second empty.
REAL = '1) "a b\\n\\"q"\n2) "plain"\n(empty array)\n1) "odd \\"key\\"\\n\\xff end"\n'


def test_key_lists_from_real_output() -> None:
    assert vc.parse_key_lists(REAL) == [[b'a b\n"q', b"plain"], [], [b'odd "key"\n\xff end']]


def test_ten_or_more_elements_are_right_aligned_and_still_one_reply() -> None:
    lines = [f'{i:2d}) "k{i}"' for i in range(1, 12)]
    assert vc.parse_key_lists("\n".join(lines)) == [[f"k{i}".encode() for i in range(1, 12)]]


@pytest.mark.parametrize(
    "key", [b"plain", b"with space", b'"quoted"', b"new\nline", b"\xff\x00bin", b"back\\slash", b""]
)
def test_quote_then_unquote_round_trips(key: bytes) -> None:
    quoted = vc.quote(key)
    assert quoted.startswith('"') and quoted.endswith('"') and "\n" not in quoted
    # What the cli does with it (sdssplitargs: \xHH escapes) is unquote's inverse.
    assert vc.unquote(quoted[1:-1]) == key


def test_unquote_escapes() -> None:
    assert vc.unquote(r"\t\r\a\b\\\"x\x41") == b'\t\r\x07\x08\\"xA'


def test_garbage_is_refused() -> None:
    with pytest.raises(vc.TopologyError, match="unexpected GETKEYSINSLOT line"):
        vc.parse_key_lists("ERR something\n")
