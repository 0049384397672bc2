"""The pieces a positional row diff is made of, checked over many inputs: rows split from a window's bytes, and
the edit script that matches two windows' rows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from datactl.tables.formats import Span, split_rows, table_format
from datactl.tables.positional import _opcodes

CSV = table_format("t.csv")
assert CSV is not None

# Lines of a quote-free table: cells, blank lines, CRLF endings; the last line may be cut off (a window's end).
line = st.sampled_from([b"", b"1,a", b"2,bb", b"33,c,d", b"x", b"\r", b"4,e\r", b",,", b"  "])


def reference(data: bytes, base: int) -> tuple[list[Span], int]:
    """What split_rows must find, one line at a time: every complete line but blank ones, without its line ending."""
    spans, start = [], 0
    while (nl := data.find(b"\n", start)) >= 0:
        end = nl - 1 if nl > start and data[nl - 1] == 13 else nl
        if end > start:
            spans.append(Span(base + start, base + end))
        start = nl + 1
    return spans, base + start


@settings(max_examples=300)
@given(st.lists(line, max_size=40), st.binary(max_size=6).filter(lambda b: b"\n" not in b and b'"' not in b), st.integers(0, 10**9))
def test_rows_of_a_window_without_quotes(lines: list[bytes], cut: bytes, base: int) -> None:
    data = b"\n".join(lines) + (b"\n" if lines else b"") + cut
    assert split_rows(data, base, CSV, at_eof=False) == reference(data, base)


@settings(max_examples=300)
@given(st.lists(st.integers(0, 4), max_size=30), st.lists(st.integers(0, 4), max_size=30))
def test_the_edit_script_turns_one_window_into_the_other(a: list[int], b: list[int]) -> None:
    rebuilt: list[int] = []
    for tag, i1, i2, j1, j2 in _opcodes(a, b):
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
        rebuilt += b[j1:j2]
    assert rebuilt == b
    covered = [i for tag, i1, i2, _, _ in _opcodes(a, b) for i in range(i1, i2)]
    assert covered == list(range(len(a)))  # every old row accounted for once, in order
