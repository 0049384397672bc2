"""parallel_map: results in order, items taken only a bounded way ahead of the consumer, the first error raised."""

from __future__ import annotations

import threading

import pytest

from datactl.core.parallel import parallel_map


def test_results_come_in_the_items_order_whatever_order_they_finish_in() -> None:
    gate = threading.Event()

    def slow_first(i: int) -> int:
        if i == 0:
            gate.wait(10)  # finishes after the others have
        elif i == 5:
            gate.set()
        return i * i

    assert list(parallel_map(slow_first, range(20), 4)) == [i * i for i in range(20)]


def test_items_are_taken_a_bounded_way_ahead_of_the_consumer() -> None:
    taken: list[int] = []

    def items():
        for i in range(10_000):
            taken.append(i)
            yield i

    results = parallel_map(lambda i: i, items(), 4)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    assert len(taken) <= 3 + 2 * 4 + 1, "a stream of items is not read whole before the first result"
    results.close()
    assert len(taken) < 100


def test_the_first_error_is_raised_when_its_result_is_reached() -> None:
    def fail_on_three(i: int) -> int:
        if i == 3:
            raise ValueError("three")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="three"):
        for r in parallel_map(fail_on_three, range(50), 4):
            got.append(r)
    assert got == [0, 1, 2]
