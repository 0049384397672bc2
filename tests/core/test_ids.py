"""Object ids: the check a tree applies to all its ids at once agrees with the check of one id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from datactl.core.ids import all_object_ids, is_object_id, object_id

ids = st.binary(max_size=8).map(object_id)
near_ids = st.one_of(
    ids,
    ids.map(str.upper),
    ids.map(lambda i: i[:-1]),
    ids.map(lambda i: i + "0"),
    ids.map(lambda i: i[:5] + "g" + i[6:]),
    st.text(max_size=40),
    st.integers(),
    st.none(),
)


@given(st.lists(near_ids, max_size=20))
def test_all_object_ids_agrees_with_checking_each(values: list) -> None:
    assert all_object_ids(values) == all(is_object_id(v) for v in values)


@given(st.lists(ids, min_size=2, max_size=5))
def test_lengths_that_add_up_are_still_refused(values: list[str]) -> None:
    # 31 + 33 characters make 64, as two ids do: each length is checked, not only the total.
    shifted = [values[0][:-1], values[1] + values[0][-1], *values[2:]]
    assert not all_object_ids(shifted)
