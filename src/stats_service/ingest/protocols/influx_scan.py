"""The exact reader of one InfluxDB line-protocol line: syntax, escapes and field values.

This is the reference for what a line means. `influx_line.py` reads most lines of a bulk
body without it (its fast path covers lines with no backslash and no double quote) and
falls back here for every line the fast path cannot take or finds wrong, so every error
message comes from this module. A property test checks that both give the same result.

Grammar (InfluxDB 1.x/2.x line protocol):

    <measurement>[,<tag key>=<tag value>...] <field key>=<field value>[,...] [<timestamp>]

- A backslash protects the next character from being a delimiter. In the measurement
  `\\,` `\\ ` and `\\\\` stand for `,` ` ` and `\\`; in tag keys, tag values and field
  keys also `\\=`. Any other backslash is kept as it is (InfluxDB 2's rule).
- A field value is a float (`1`, `-1.5`, `.5`, `1e3`, `1.0E+3`), an integer (`12i`), an
  unsigned integer (`12u`), a boolean (`t T true True TRUE f F false False FALSE`) or a
  double-quoted string in which `\\"` and `\\\\` stand for `"` and `\\`; a string may
  hold spaces, commas, equals signs and newlines.
- The timestamp is an optional signed integer in the request's precision.

The error reasons are InfluxDB's where it has one ("missing fields", "invalid number",
"unbalanced quotes", ...), so clients and their logs read the same text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

BOOLEANS: dict[str, float] = {
    **dict.fromkeys(("t", "T", "true", "True", "TRUE"), 1.0),
    **dict.fromkeys(("f", "F", "false", "False", "FALSE"), 0.0),
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
NUMBER_START = frozenset("0123456789.-Nn")

# unrolled "(?:[^\\,]|\\.)*": runs of plain characters between escaped ones; possessive
# quantifiers everywhere, so that no input makes a pattern backtrack (a 10 MB body of
# digits and a letter would take hours with "\d+\.?\d*")
_MEASUREMENT = re.compile(r"[^\\, ]*+(?:\\.[^\\, ]*+)*+(?:\\\Z)?", re.S)
_NAME = re.compile(r"[^\\,= ]*+(?:\\.[^\\,= ]*+)*+(?:\\\Z)?", re.S)  # tag key/value, field key
_STRING = re.compile(r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.S)
_TOKEN = re.compile(r"[^, ]*")
_SPACES = re.compile(r"[ \t]*")
_FLOAT = re.compile(r"-?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][+-]?\d++)?+", re.A)
_INTEGER = re.compile(r"-?\d++", re.A)
_TIMESTAMP = re.compile(r"(-?\d++)[ \t]*+", re.A)
_MEASUREMENT_ESCAPE = re.compile(r"\\([, \\])")
_NAME_ESCAPE = re.compile(r"\\([,= \\])")
_STRING_ESCAPE = re.compile(r'\\(["\\])')


class LineError(ValueError):
    """Why a line is skipped; `open_quote` is where an unclosed string starts."""

    def __init__(self, reason: str, open_quote: int = -1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.open_quote = open_quote


@dataclass(slots=True)
class Record:
    """One line as written: `key` is the raw measurement-and-tags text (escapes kept),
    the cache key of the series mapping; `fields` hold floats (numbers, booleans) or
    str (string fields); `timestamp` is the raw integer text or None."""

    key: str
    measurement: str
    tags: list[tuple[str, str]]
    fields: list[tuple[str, float | str]]
    timestamp: str | None


def unescape_measurement(raw: str) -> str:
    return _MEASUREMENT_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw


def unescape_name(raw: str) -> str:
    return _NAME_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw


def field_value(token: str) -> float:
    """A non-string field value as float64 (booleans as 1.0 / 0.0)."""
    if not token:
        raise LineError("missing field value")
    if token[0] not in NUMBER_START:
        value = BOOLEANS.get(token)
        if value is None:
            raise LineError("invalid boolean")
        return value
    suffix = token[-1]
    if suffix == "i" or suffix == "u":
        digits = token[:-1]
        if not _INTEGER.fullmatch(digits) or (suffix == "u" and digits[0] == "-"):
            raise LineError("invalid number")
        number = int(digits) if len(digits) <= 25 else UINT64_MAX + 1  # no huge int()
        shown = digits if len(digits) <= 25 else digits[:25] + "..."
        if suffix == "i" and not INT64_MIN <= number <= INT64_MAX:
            raise LineError(f"unable to parse integer {shown}: value out of range")
        if suffix == "u" and number > UINT64_MAX:
            raise LineError(f"unable to parse unsigned {shown}: value out of range")
        return float(number)
    if not _FLOAT.fullmatch(token):
        raise LineError("invalid number")
    value = float(token)
    if not math.isfinite(value):
        raise LineError("invalid float")
    return value


def closes_string(text: str, open_quote: int) -> bool:
    """Whether the string value opened at `open_quote` is closed within `text`."""
    return _STRING.match(text, open_quote) is not None


def scan_key(line: str) -> tuple[int, str, list[tuple[str, str]]]:
    """(end of the key section, measurement, tags) of a line that starts with its
    measurement; the end is the index of the space before the fields."""
    if line[:1] == ",":
        raise LineError("missing measurement")
    i = _MEASUREMENT.match(line).end()  # type: ignore[union-attr]
    measurement = line[:i]
    if i >= len(line):
        raise LineError("missing fields")
    if not measurement:
        raise LineError("missing measurement")
    tags: list[tuple[str, str]] = []
    while line[i] == ",":
        i += 1
        end = _NAME.match(line, i).end()  # type: ignore[union-attr]
        if end == i:
            raise LineError("missing tag key")
        if end >= len(line) or line[end] != "=":
            raise LineError("missing tag value")
        key = line[i:end]
        i = end + 1
        end = _NAME.match(line, i).end()  # type: ignore[union-attr]
        if end == i:
            raise LineError("missing tag value")
        if end >= len(line):
            raise LineError("missing fields")
        if line[end] == "=":
            raise LineError("invalid tag format")
        tags.append((unescape_name(key), unescape_name(line[i:end])))
        i = end
    if len({k for k, _ in tags}) != len(tags):
        raise LineError("duplicate tags")
    return i, unescape_measurement(measurement), tags


def scan_record(line: str) -> Record:
    """Read one line (leading whitespace, comments and blank lines already skipped)."""
    key_end, measurement, tags = scan_key(line)
    n = len(line)
    i = _SPACES.match(line, key_end).end()  # type: ignore[union-attr]
    if i >= n:
        raise LineError("missing fields")
    fields: list[tuple[str, float | str]] = []
    while True:
        end = _NAME.match(line, i).end()  # type: ignore[union-attr]
        if end >= n or line[end] != "=":
            raise LineError("invalid field format")
        if end == i:
            raise LineError("missing field key")
        name = unescape_name(line[i:end])
        i = end + 1
        if i >= n or line[i] in ", ":
            raise LineError("missing field value")
        if line[i] == '"':
            string = _STRING.match(line, i)
            if string is None:
                raise LineError("unbalanced quotes", open_quote=i)
            raw = string.group(1)
            fields.append((name, _STRING_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw))
            i = string.end()
            if i < n and line[i] not in ", ":
                raise LineError("invalid field format")
        else:
            end = _TOKEN.match(line, i).end()  # type: ignore[union-attr]
            fields.append((name, field_value(line[i:end])))
            i = end
        if i >= n or line[i] == " ":
            break
        i += 1  # the comma before the next field
        if i >= n or line[i] in ", ":
            raise LineError("invalid field format")
    timestamp = None
    i = _SPACES.match(line, i).end()  # type: ignore[union-attr]
    if i < n:
        stamp = _TIMESTAMP.match(line, i)
        if stamp is None or stamp.end() != n:
            raise LineError("bad timestamp")
        timestamp = stamp.group(1)
    return Record(line[:key_end], measurement, tags, fields, timestamp)
