"""The fetcher thread that reads a stream's pages ahead of parsing and loading.

Pages come in order, a failure to read comes after the pages read before it,
and closing the reader early stops the fetcher and closes the paginator.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rulewatch.sources.engine import SourceError
from rulewatch.sync import READ_AHEAD_PAGES, _read_ahead


def _fetchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rulewatch-fetch-test")]


def test_pages_in_order_then_the_failure_after_them() -> None:
    def pages() -> Iterator[list]:
        yield [1, 2]
        yield [3]
        raise SourceError("test: HTTP 503 from the server")

    got = []
    with pytest.raises(SourceError, match="HTTP 503"):
        for page in _read_ahead(pages(), "test"):
            got.append(page)
    assert got == [[1, 2], [3]]
    assert not _fetchers()


def test_closing_early_stops_the_fetcher_and_closes_the_paginator() -> None:
    read, closed = [], threading.Event()

    def endless() -> Iterator[list]:
        try:
            n = 0
            while True:
                read.append(n)
                yield [n]
                n += 1
        finally:
            closed.set()

    reader = _read_ahead(endless(), "test")
    assert next(reader) == [0]
    reader.close()
    assert closed.is_set()  # close() waited for the fetcher, which closed the paginator
    assert not _fetchers()
    # it read ahead, but no further than its queue (and the page in its hand) allow
    assert len(read) <= READ_AHEAD_PAGES + 2
