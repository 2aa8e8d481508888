"""YAML for managed hosts that have no PyYAML: the service's config.yml and secrets.yml, read with the standard
library alone when they are in the plain form the deploy role writes.

A managed host's Python is often bare (RHEL's or Ubuntu's system Python, 3.8-3.13, nothing installed); PyYAML
lives in the service's own virtual environment, not there. ``safe_load`` uses PyYAML when the module's Python has
it, and otherwise reads the plain subset the deploy role writes: block mappings, ``#`` comments, and plain,
single- or double-quoted scalars (null, booleans, decimal integers, floats, strings), giving what PyYAML's
``safe_load`` gives for them. Anything beyond (lists, flow collections, anchors, tags, block scalars, octal or
sexagesimal numbers, tabs) raises ``YamlSubsetError`` naming the line, so a file edited by hand is refused
with the fix (install PyYAML on the host) instead of being misread.

Standard library only, Python 3.8+.
"""

from __future__ import annotations

import json
import re
from typing import Any

try:
    import yaml as _pyyaml
except ImportError:  # a bare host: the subset reader below
    _pyyaml = None

BOOLEANS = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
}
NULLS = ("", "~", "null", "Null", "NULL")
INTEGER = re.compile(r"[-+]?(0|[1-9][0-9]*)$")
FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+][0-9]+)?$")
# Plain scalars PyYAML reads as something else than a string, or not at all: refused rather than guessed.
AMBIGUOUS = re.compile(
    r"[-+]?(0[0-9_]+|0[xXoObB].*|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|[0-9.]*_[0-9_.]*|\.(inf|Inf|INF|nan|NaN|NAN))$"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?$|=$|.*:$"
)
KEY = re.compile(r"""(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-/]*|"[^"\\]*"|'[^']*'):(?:[ ]+(?P<value>.*?))?[ ]*$""")
# Characters other than printable ones and spaces: YAML reads tabs, line breaks (\r, \x85, \u2028) and the BOM
# in ways of their own.
OUTSIDE = re.compile("[^\x20-\x7e\xa0-\u2027\u202a-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
INDICATORS = tuple("[]{}&*!|>%@`-?,")


class YamlSubsetError(ValueError):
    """The text is outside what this host can read without PyYAML; the message names the line."""


# What safe_load raises for text it cannot read: PyYAML's error, or the subset reader's.
YAML_ERRORS: tuple[type, ...] = (YamlSubsetError,) + ((_pyyaml.YAMLError,) if _pyyaml is not None else ())


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)`` with PyYAML, else the plain subset (raises ``YamlSubsetError``, or PyYAML's error)."""
    if _pyyaml is not None:
        return _pyyaml.safe_load(text)
    return load_subset(text)


def load_subset(text: str) -> Any:
    """The plain subset, with the standard library only (also what tests compare with PyYAML)."""
    lines: list[tuple[int, int, str]] = []  # (line number, indentation, content)
    for number, raw in enumerate(text.split("\n"), start=1):
        odd = OUTSIDE.search(raw)
        if odd:
            raise YamlSubsetError(f"line {number}: the character {odd.group()!r} (a tab, control or line break)")
        stripped = raw.strip(" ")
        if not stripped or stripped.startswith("#") or (not lines and stripped == "---"):
            continue
        lines.append((number, len(raw) - len(raw.lstrip(" ")), stripped))
    if not lines:
        return None
    value, end = _mapping(lines, 0, lines[0][1])
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end][0]}: indented less than the first key of its mapping")
    return value


def _mapping(lines: list[tuple[int, int, str]], start: int, indent: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    index = start
    while index < len(lines):
        number, column, content = lines[index]
        if column < indent:
            break
        if column > indent:
            raise YamlSubsetError(f"line {number}: unexpected indentation")
        match = KEY.match(content)
        if match is None:
            raise YamlSubsetError(f"line {number}: not a 'key: value' line of a block mapping")
        key = _key(match.group("key"), number)
        raw = _strip_comment(match.group("value") or "", number)
        index += 1
        if raw == "" and index < len(lines) and lines[index][1] > indent:
            result[key], index = _mapping(lines, index, lines[index][1])
        else:
            result[key] = _scalar(raw, number)
    return result, index


def _key(text: str, number: int) -> str:
    if text[0] in "\"'":
        return text[1:-1]
    if not isinstance(_scalar(text, number), str):  # PyYAML reads "1:", "yes:" or "null:" as other keys
        raise YamlSubsetError(f"line {number}: the key {text!r} is not a plain string")
    return text


def _strip_comment(text: str, number: int) -> str:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = _closing_quote(text, quote)
        if end < 0:
            raise YamlSubsetError(f"line {number}: a quoted value that does not end on its line")
        rest = text[end + 1 :].strip(" ")
        if rest and not rest.startswith("#"):
            raise YamlSubsetError(f"line {number}: text after a quoted value")
        return text[: end + 1]
    position = text.find(" #")
    return (text[:position] if position >= 0 else text).strip(" ")


def _closing_quote(text: str, quote: str) -> int:
    index = 1
    while index < len(text):
        if quote == '"' and text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            if quote == "'" and text[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index
        index += 1
    return -1


def _scalar(text: str, number: int) -> Any | None:
    if text.startswith('"'):
        try:
            return json.loads(text)  # the role writes secrets with to_json; JSON strings are YAML double-quoted ones
        except ValueError:
            raise YamlSubsetError(f"line {number}: a double-quoted value with escapes beyond JSON's") from None
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text in NULLS:
        return None
    if text in BOOLEANS:
        return BOOLEANS[text]
    if INTEGER.match(text):
        return int(text)
    if FLOAT.match(text):
        return float(text)
    if text.startswith(INDICATORS) or ": " in text or AMBIGUOUS.match(text):
        raise YamlSubsetError(f"line {number}: {text[:40]!r} needs a full YAML parser")
    return text
