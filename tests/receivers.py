"""Real receivers for alert tests: a JSON webhook on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """A JSON webhook receiver that can be switched off (answers 503), or made to hold
    each request unanswered until ``release`` is set (``hold``; ``reached`` tells when
    one arrived), then answer 503 without recording it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.up = True
        self.hold = False
        self.reached, self.release = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.hold:
                    outer.reached.set()
                    outer.release.wait(120)
                    self.send_response(503)
                    self.end_headers()
                    return
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def titles(self, containing: str = "") -> list[str]:
        """Titles received, in order, that contain ``containing``."""
        return [m["title"] for m in self.received if containing in m["title"]]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
