"""The fetch-ahead thread of a stream and the SQLite write turn (no servers needed)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine

from rulewatch.sync import _Prefetch, write_turn


def _pages(n: int, fail_at: int | None = None, seen: list | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"page {i} failed")
            yield [i]
    finally:
        if seen is not None:
            seen.append(threading.current_thread().name)


def test_pages_arrive_in_order_and_the_iterator_is_closed_on_its_thread():
    seen: list[str] = []
    prefetch = _Prefetch(_pages(50, seen=seen), 3, "s")
    assert [p[0] for p in prefetch] == list(range(50))
    prefetch.close()
    assert seen == ["fetch-s"]


def test_an_error_comes_after_the_pages_before_it():
    prefetch = _Prefetch(_pages(10, fail_at=4), 2, "s")
    got = []
    with pytest.raises(RuntimeError, match="page 4 failed"):
        for page in prefetch:
            got.append(page[0])
    prefetch.close()
    assert got == [0, 1, 2, 3]


def test_close_stops_a_producer_that_is_ahead_and_memory_stays_bounded():
    produced: list[int] = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield [i]
            i += 1

    prefetch = _Prefetch(endless(), 2, "s")
    it = iter(prefetch)
    assert next(it) == [0]
    time.sleep(0.3)
    assert len(produced) <= 4  # the page taken, two queued, one in hand
    prefetch.close()
    assert not prefetch._thread.is_alive()


def test_sqlite_writers_of_one_file_share_a_turn(tmp_path):
    a = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    b = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    other = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert write_turn(a) is write_turn(b)
    assert write_turn(a) is not write_turn(other)
    pg = create_engine("postgresql+psycopg://u@127.0.0.1/db")
    with write_turn(pg):  # nothing to wait for on PostgreSQL
        pass
