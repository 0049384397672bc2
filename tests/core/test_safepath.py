"""Names read from a version: the shortcut for plain names accepts exactly what the full check accepts."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from datactl.core.errors import UnsafePath
from datactl.core.safepath import check_any_entry_name, check_entry_name

plain_ish = st.text(alphabet="aZ09_.-:/\\\0é日", max_size=14)


def _verdict(check, name):  # type: ignore[no-untyped-def]
    try:
        return check(name)
    except UnsafePath as exc:
        return ("refused", exc.message)


@given(st.one_of(plain_ish, st.text(max_size=14), st.sampled_from([".datactl", "x.datactl-tmp", "C:", "..", ""])))
@example("a.datactl-tmp")
@example("_\ud800")
def test_the_shortcut_agrees_with_the_full_check(name: str) -> None:
    assert _verdict(check_entry_name, name) == _verdict(check_any_entry_name, name)
