"""Text from people, alerts and hosts, made safe for the place it is shown.

Stored text (reasons, titles, messages, host names, errors) is kept exactly as given; it is changed only when
shown:

* :func:`terminal` for a terminal: every control character (C0, DEL, C1: ESC, CR, newline, tab...), the
  Unicode line separators, the bidirectional overrides and lone surrogates become a visible escape
  (``\\x1b``, ``\\n``, ``\\u202e``), so that stored text can neither move the cursor, recolour the screen,
  rewrite the terminal's title nor fake a line of output. JSON output needs none of it (JSON escapes them).
* :func:`markdown` for the Markdown report: :func:`terminal`, then every character Markdown or HTML would
  interpret (``<``, ``&``, ``*``, ``[``, ``|``, the backslash...) escaped, so that the text renders as the
  same text.
* :func:`shown` for an error message that names a value: its ``repr``, cut to a readable length.

Rich markup in stored text is not interpreted by the CLI: its tables take :class:`rich.text.Text` cells.
"""

from __future__ import annotations

import re

__all__ = ["markdown", "shown", "terminal"]

# C0 controls, DEL, C1 controls, line/paragraph separators, bidi embeddings/overrides/isolates, BOM-like
# invisible marks, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What CommonMark (with GitHub's tables, strikethrough and math) could interpret inside a line that does not
# start with it: code, emphasis (``_`` only at a word's edge), links and images, table cells, strikethrough,
# math. ``<`` and ``&`` (HTML, entities) become entities.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(value: object) -> str:
    """``value`` as text a terminal shows as it is: control characters become visible escapes."""
    return _UNSAFE.sub(_visible, value if isinstance(value, str) else str(value))


def markdown(value: object) -> str:
    """``value`` as Markdown that renders as the text itself (on one line; never HTML, a link or a table cell
    break)."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", terminal(value))
    return "".join(_HTML.get(char, char) for char in text)


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters (with the full length)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f"{len(value)} characters" if isinstance(value, str | bytes) else "long"
    return f"{text[: limit - 1]}… ({length})"
