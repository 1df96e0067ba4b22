"""Servers that misbehave the way a broken network does, for the operations tests.

- :class:`SilentServer` accepts TCP connections and never says a word (a host
  behind a dead proxy, a database server wedged before its greeting).
- :func:`flaky_permits` answers 503 a given number of times, then an empty
  permits page (source-apis.md's shape), so a sync retries and then succeeds.
"""

from __future__ import annotations

import socket
import threading

from scripted_sources import ScriptedSource


class SilentServer:
    """A loopback port that accepts connections and keeps them open, silent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def flaky_permits(failures: int) -> ScriptedSource:
    """The permits API with no records that fails with 503 ``failures`` times, then
    serves the contract's empty page; ``len(.queries)`` counts the requests."""
    source = ScriptedSource("permits", [])
    source.misbehave = lambda n, _path, _query: (503, b"", {}) if n <= failures else None
    return source
