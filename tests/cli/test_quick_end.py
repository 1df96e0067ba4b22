"""A sync's process ends without the interpreter's clean-up (0.5-1 s of tearing down
Prefect's objects), and loses nothing by it: its exit code, everything written
(buffered into a pipe), logged, and every exit handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import atexit, logging, sys
    from rulewatch.cli import main as cli

    def command():
        cli.end_without_cleanup()
        atexit.register(lambda: print("exit handler ran"))
        logging.getLogger("rulewatch").warning("logged")
        print("written")  # a pipe: block-buffered, flushed only at the end
        if sys.argv[1] == "fail":
            raise RuntimeError("boom")
        raise SystemExit(int(sys.argv[1]))

    class Late:  # torn down by the interpreter's clean-up, which is skipped
        def __del__(self):
            print("cleaned up")

    kept = Late()
    cli.app = command
    cli.main()
    """
)


@pytest.mark.parametrize(("argument", "code"), [("0", 0), ("3", 3), ("fail", 1)])
def test_the_exit_code_output_and_handlers_are_kept(argument: str, code: int) -> None:
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, argument], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == code
    assert res.stdout.splitlines() == ["written", "exit handler ran"]
    assert "logged" in res.stderr
    if argument == "fail":
        assert "rulewatch: failed: unexpected RuntimeError: boom" in res.stderr
