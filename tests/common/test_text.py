"""Server text made safe to print, log and store (rulewatch.common.text)."""

from __future__ import annotations

import pytest

from rulewatch.common.text import MAX_SERVER_TEXT, server_text


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("\x1b[2J\x1b[H\x1b[31mdisk full\x1b[0m", "disk full"),  # CSI: clear, home, colour
        ("\x1b]0;owned\x07title", "title"),  # OSC: set the window title
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("a\x00b\x7fc\x85d", "a b c d"),  # NUL, DEL, C1
        ("line one\r\nline two\tend", "line one line two end"),  # no forged log lines
        ("evil\u202etxt.exe\u2066", "evil txt.exe"),  # bidi override, isolate
        ("lone \ud800 surrogate", "lone surrogate"),  # no UTF-8 stream can write it
        ("资料有误", "资料有误"),
        (404, "404"),
    ],
)
def test_control_characters_and_escapes_go(said, shown):
    assert server_text(said) == shown


def test_long_text_is_capped_with_an_ellipsis():
    text = server_text("\x00" * 5000 + "x" * 5000)
    assert len(text) == MAX_SERVER_TEXT and text.endswith("…")
    assert server_text("abcdef", 4) == "abc…"
