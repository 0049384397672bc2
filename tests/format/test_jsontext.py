"""Plain JSON through orjson is the canonical JSON of the json module, byte for byte, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datactl.format.jsontext import canonical_json, canonical_plain_json, parse_json, parse_plain_json

# Any text a name or a source can hold (control characters, quotes, backslashes, beyond the BMP), not lone surrogates.
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None)
@given(plain)
def test_plain_json_is_written_and_read_as_the_json_module_does(value: object) -> None:
    written = canonical_json(value)
    assert canonical_plain_json(value) == written
    assert parse_plain_json(written) == parse_json(written) == value


@pytest.mark.parametrize("value", [2**64, {1: "a"}, "\ud800"])
def test_a_value_that_is_not_plain_is_refused_not_written_otherwise(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_plain_json(value)


@pytest.mark.parametrize("data", [b"", b"{", b"[" * 5000 + b"]" * 5000, b'{"a":1e999999}', b'"\\ud800"', b"\xff"])
def test_text_that_is_not_plain_json_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_plain_json(data)


def test_an_integer_beyond_64_bits_is_read_as_no_integer() -> None:
    assert type(parse_plain_json(b"18446744073709551616")) is not int
