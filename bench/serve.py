"""The demo source systems in their own process, for the benchmark.

Starts permits, enforcement and docreview on free loopback ports with ``--scale``
synthetic records, prints one JSON line (``{"env": {...}, "urls": {...}}``) on
standard output once they answer, and runs until standard input closes or
SIGTERM, so the server's CPU and memory are never counted in a contender.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from rulewatch.demo.servers import start_demo_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--malformed", type=int, default=0, help="malformed records per stream")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with start_demo_sources(
        args.host, (0, 0, 0), scale=args.scale, malformed=args.malformed
    ) as sources:
        print(json.dumps({"env": sources.env(), "urls": sources.urls}), flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()


if __name__ == "__main__":
    main()
