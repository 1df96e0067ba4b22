"""Text a server said, made safe to print, log and store.

Error bodies, reason phrases, links and exception texts from a source are the
server's words: they may hold ANSI escapes (which clear or rewrite a terminal),
NUL (which PostgreSQL refuses), lone surrogates (which no UTF-8 stream can
write), bidirectional overrides, newlines that forge log lines, and megabytes.
:func:`server_text` is applied where such text enters rulewatch's messages.
"""

from __future__ import annotations

import re

#: Longest server text kept in one message (characters, the ellipsis included).
MAX_SERVER_TEXT = 300

# Escape sequences as a whole (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``, and
# two-character ones), so no printable remainder such as ``[2J`` is left behind.
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -~]?)|\x9b[0-?]*[ -/]*[@-~]?"
)
# C0 and C1 controls, DEL, lone surrogates, and the invisible format characters
# that reorder or hide text (zero-width, bidi embeddings, overrides and isolates,
# line and paragraph separators, BOM, interlinear annotation).
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]+"
)


def server_text(value: object, limit: int = MAX_SERVER_TEXT) -> str:
    """``value`` as one plain line: escapes and control characters gone, whitespace
    runs made one space, at most ``limit`` characters (cut with an ellipsis)."""
    text = value if isinstance(value, str) else str(value)
    text = text[: limit * 64]  # bound the work; what is kept is far shorter
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text
