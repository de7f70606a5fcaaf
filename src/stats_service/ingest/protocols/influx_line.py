"""InfluxDB line protocol (`POST /write`, `/api/v2/write`): bytes -> Batch.

Params: `precision` (`n`/`ns` default, `u`/`us`, `ms`, `s`, `m`, `h`) and `db` (the
database or bucket; not part of the series). The syntax, escapes and field types are
described in `influx_scan.py`.

What a line becomes
-------------------
Every field of a line is one point at the line's timestamp.

- Default: metric = `<measurement>_<field key>`, except the field key `value`, which
  gives metric = `<measurement>`. Tags stay tags, names and values as sent (Unicode
  included). The device is the tag `device` when present; otherwise a `host` tag (as
  Telegraf sends) becomes the device: the tag `host` is removed and `device=<host>`
  is added (with both, `host` stays an ordinary tag). Without either, a device key's
  own device is used, else the series has no device.
- Home Assistant (its InfluxDB integration): when the tags include both `domain` and
  `entity_id`, the device is `<domain>.<entity_id>` (e.g.
  `sensor.living_room_temperature`), the tags `domain` and `entity_id` are removed
  (other tags such as `source` are kept; a `device` tag is replaced), and the metric is
  the field key itself: `value` (the numeric state), `state` (the state as text),
  attributes such as `temperature` or `friendly_name_str`. Home Assistant names the
  measurement after the unit of measurement (`°C`, `%`, `W`), or, for entities without
  a unit, after the entity id (`<domain>.<entity_id>` or `<entity_id>`); so the
  measurement is the unit of the `value` series unless it equals the entity id. Other
  fields get no unit: an attribute's unit is not the state's.
- Field types: floats, integers (`12i`), unsigned integers (`12u`) -> numbers (float64;
  integers beyond 2**53 are rounded); booleans -> 1.0 / 0.0; strings -> text values
  (states), such as Home Assistant's `state` and `*_str` attributes. A field that
  changes type between lines or requests never fails a batch: numbers and text of the
  same series go to the number and text columns.
- Timestamps: integers in the request's precision, converted to UTC microseconds
  (nanoseconds are floored to microseconds). A line without a timestamp gets the server
  time, truncated to the precision (as InfluxDB does).

Lenient, like InfluxDB: a bad line is skipped (`BatchBuilder.drop`, location
`line N`, N the 1-based line where the record starts) with InfluxDB's text
`unable to parse '<line, at most 200 characters>': <reason>`, and the other lines are
written. Besides InfluxDB's syntax reasons, a line is skipped when a measurement, tag
key, tag value, field key or resulting metric name is longer than 256 characters or
holds control characters, when it has more than 64 tags, when the device is not a valid
device name (1-128 letters, digits and `. _ : @ -`), when a string value is longer than
65,535 characters, when the line is not valid UTF-8, when the timestamp is outside
1900-01-01 .. 9999-12-31, or when it lies more than the allowed skew in the future. Blank
lines and comments (`#` first) are ignored, CRLF line endings accepted; a newline ends a
line unless it is inside a double-quoted string value (a string that is never closed
ends at its own line and is refused there, not swallowing the rest of the body). A body
of only comments is an empty batch; a body whose every line is bad is refused whole.

Speed: lines without backslash or double quote take a fast path: two `str.partition`
calls split a line, its measurement-and-tags text is looked up in a dict of the request
(one lookup per repeated series key; the mapping itself is memoised for the process in
`influx_series.entry_for`), one compiled pattern per field-key sequence checks the
field keys and captures the values, and numbers and timestamps are converted for the
whole body at once with numpy. Everything the fast path cannot take or finds wrong
goes to the exact reader (`influx_scan.py`), which gives the same result
(property-tested) and every error message.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, chain

import numpy as np
import numpy.typing as npt

from ...errors import BadParameter
from ...model import Batch, States
from ..timestamps import MAX_US, MIN_US, format_us
from .base import BatchBuilder, ParseContext
from .influx_scan import (
    INT64_MAX,
    INT64_MIN,
    LineError,
    Record,
    closes_string,
    field_value,
    scan_record,
)
from .influx_series import Layout, SeriesEntry, entry_for, register

# precision -> (multiplier, divisor) from the sent unit to microseconds
PRECISIONS: dict[str, tuple[int, int]] = {
    "n": (1, 1000),
    "ns": (1, 1000),
    "u": (1, 1),
    "us": (1, 1),
    "ms": (1000, 1),
    "s": (1_000_000, 1),
    "m": (60_000_000, 1),
    "h": (3_600_000_000, 1),
}
MAX_TEXT = 65_535
MAX_SHOWN = 200  # characters of a bad line quoted in its message
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# a double quote after an even number of backslashes: one that can close a string value
# (a backslash escapes the next character, and a string opens right after `=`)
_CLOSING_QUOTE = re.compile(r'(?<!\\)(?:\\\\)*"')
_TIMESTAMPS = re.compile(r"-?\d{1,19}(?:,-?\d{1,19})*", re.A)
_TIMESTAMP = re.compile(r"-?\d{1,19}", re.A)
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_POW10F = 10.0 ** np.arange(23)
_MAX_SIMPLE_DIGITS = 15  # a mantissa below 2**53 divided by an exact power of ten rounds right

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def parse(body: bytes, ctx: ParseContext) -> Batch:
    return _Parser(ctx, fast=True).run(body)


def parse_exact(body: bytes, ctx: ParseContext) -> Batch:
    """The same as `parse` with every line read by the exact reader (tests, reference)."""
    return _Parser(ctx, fast=False).run(body)


def shown(line: str) -> str:
    """A line as quoted in messages: at most MAX_SHOWN characters, undecodable bytes as U+FFFD."""
    if _SURROGATE.search(line):
        line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return line if len(line) <= MAX_SHOWN else line[:MAX_SHOWN] + "..."


class _Parser:
    """The state of one request: caches, the exact path's points, the dropped lines."""

    def __init__(self, ctx: ParseContext, *, fast: bool) -> None:
        precision = ctx.precision or "ns"
        if precision not in PRECISIONS:
            raise BadParameter(
                "precision", f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        self.ctx = ctx
        self.fast = fast
        self.mul, self.div = PRECISIONS[precision]
        self.now_sent = ctx.now_us * self.div // self.mul  # server time in the sent unit
        self.latest_us = min(MAX_US, ctx.max_future_us)
        self.builder = BatchBuilder(ctx.tenant_id)
        self.keys: dict[str, _Key] = {}  # fast path: raw key text -> its entry this request
        self.units = False  # whether a series with a unit was registered in this request
        self.bad_utf8 = False
        self.drops: list[tuple[int, str]] = []
        self.e_sid: list[int] = []
        self.e_ts: list[int] = []
        self.e_value: list[float] = []
        self.e_line: list[int] = []
        self.line_starts: list[int] = []  # offsets of the lines in the body's text
        self.closing_quotes: list[int] = []  # offsets of the quotes that can close a string

    # -- the whole body ------------------------------------------------------------

    def run(self, body: bytes) -> Batch:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = body.decode("utf-8", "surrogateescape")
            self.bad_utf8 = True
        text = text.removeprefix("\ufeff")
        if "\r" in text:
            text = text.replace("\r\n", "\n").removesuffix("\r")
        lines = text.split("\n")
        if '"' in text:
            self.line_starts = [0, *accumulate(len(line) + 1 for line in lines)]
            self.closing_quotes = [m.end() - 1 for m in _CLOSING_QUOTE.finditer(text)]
        if self.fast and '"' not in text and "\\" not in text:
            fast = self._fast(lines, None)
        else:
            candidates: list[int] = []
            i = 0
            while i < len(lines):
                line = lines[i]
                if self.fast and '"' not in line and "\\" not in line:
                    candidates.append(i)
                    i += 1
                else:
                    i = self._exact(lines, i)
            fast = self._fast(lines, candidates) if candidates else None
        return self._finish(fast)

    # -- the exact path --------------------------------------------------------------

    def _exact(self, lines: list[str], i: int) -> int:
        """Read the record that starts on line i; returns the index of the next line."""
        line = lines[i].lstrip(" \t\0")
        if not line or line[0] == "#":
            return i + 1
        last = i
        while True:
            try:
                record: Record | None = scan_record(line)
                break
            except LineError as exc:
                error = exc
                joined = self._join_string(lines, i, line, last, exc.open_quote)
                if joined is None:
                    record = None
                    break
                line, last = joined
        if self.bad_utf8 and _SURROGATE.search(line):
            self.drops.append((i + 1, f"unable to parse '{shown(line)}': invalid UTF-8"))
        elif record is None:
            self.drops.append((i + 1, f"unable to parse '{shown(line)}': {error.reason}"))
        else:
            try:
                self._add(record, i + 1)
            except LineError as exc:
                self.drops.append((i + 1, f"unable to parse '{shown(line)}': {exc.reason}"))
        return last + 1

    def _join_string(
        self, lines: list[str], first: int, record: str, last: int, open_quote: int
    ) -> tuple[str, int] | None:
        """The record (lines `first`..`last`, leading whitespace stripped) extended over
        the next lines up to the one holding the quote that closes the string opened at
        `open_quote`; None when no later line does. One bisection in the quotes of the
        whole body, so a body of unclosed strings costs linear time."""
        if open_quote < 0:
            return None
        start = self.line_starts[first] + len(lines[first]) - len(lines[first].lstrip(" \t\0"))
        k = bisect_right(self.closing_quotes, start + open_quote)
        if k == len(self.closing_quotes):
            return None
        j = bisect_right(self.line_starts, self.closing_quotes[k]) - 1
        if j <= last:
            return None
        record = "\n".join([record, *lines[last + 1 : j + 1]])
        return (record, j) if closes_string(record, open_quote) else None

    def _add(self, record: Record, line_no: int) -> None:
        """The points of one read line; LineError refuses the line whole."""
        entry = entry_for(self.ctx.tenant_id, self.ctx.device, record.key)
        assert entry is not None  # the key was read without error
        if entry.error is not None:
            raise LineError(entry.error)
        series = [entry.series(name) for name, _ in record.fields]
        if any(isinstance(value, str) and len(value) > MAX_TEXT for _, value in record.fields):
            raise LineError(f"string field value longer than {MAX_TEXT} characters")
        ts = self._timestamp(record.timestamp)
        for sid, meta in series:
            self.units = self.units or meta.unit is not None
            register(self.builder, sid, meta)
        for (sid, _), (_, value) in zip(series, record.fields, strict=True):
            if isinstance(value, str):
                self.builder.add_state(sid, ts, value)
            else:
                self.e_sid.append(sid)
                self.e_ts.append(ts)
                self.e_value.append(value)
                self.e_line.append(line_no)

    def _timestamp(self, text: str | None) -> int:
        sent = self.now_sent if text is None else int(text) if len(text) <= 21 else INT64_MAX + 1
        if not INT64_MIN <= sent <= INT64_MAX:
            raise LineError("bad timestamp")
        us = sent // self.div * self.mul
        if not MIN_US <= us <= MAX_US:
            raise LineError(f"time outside range {format_us(MIN_US)} .. {format_us(MAX_US)}")
        if us > self.ctx.max_future_us:
            raise LineError(
                f"time {format_us(us)} lies too far in the future (server time "
                f"{format_us(self.ctx.now_us)}); check the device clock"
            )
        return us

    # -- the fast path ---------------------------------------------------------------

    def _fast(self, lines: list[str], indices: list[int] | None) -> _FastPoints | None:
        """The lines at `indices` (all when None), which hold no backslash or quote;
        those it cannot take go to `_exact`."""
        keys = self.keys
        find = keys.get
        values: list[str] = []
        stamps: list[str] = []
        layouts: list[tuple[int, ...]] = []
        taken: list[int] = []
        exact: list[int] = []
        add_values, add_stamp, add_sids, add_taken = (
            values.extend,
            stamps.append,
            layouts.append,
            taken.append,
        )
        pairs = (
            enumerate(lines)
            if indices is None
            else zip(indices, [lines[i] for i in indices], strict=True)
        )
        for i, line in pairs:  # the hot loop: every attribute lookup here counts
            key, _, rest = line.partition(" ")
            fields, _, stamp = rest.partition(" ")
            known = find(key)
            if known is None:
                known = keys[key] = self._key(key)
            match = known.match(fields)
            if match is None:
                match = self._layout(known, fields)
                if match is None:
                    if known is not _COMMENT:
                        exact.append(i)
                    continue
            add_values(match.groups())
            add_stamp(stamp)
            add_sids(known.sids)
            add_taken(i)
        fast = self._columns(values, stamps, layouts, taken, exact) if taken else None
        for i in sorted(exact):
            self._exact(lines, i)
        return fast

    def _key(self, key: str) -> _Key:
        if not key or key[0] in " \t\0":
            return _EXACT
        if key[0] == "#":
            return _COMMENT
        entry = entry_for(self.ctx.tenant_id, self.ctx.device, key)
        if entry is None or entry.error is not None:
            return _EXACT
        return _Key(entry)

    def _layout(self, known: _Key, fields: str) -> re.Match[str] | None:
        """The layout of a field set not seen with this key just before, its series
        registered in this request's batch; the match of its pattern (None: the line
        goes to the exact path)."""
        if known.entry is None:
            return None
        layout = known.entry.layout(tuple(fields.replace("=", ",").split(",")[0::2]))
        match = layout.pattern.fullmatch(fields) if layout.pattern is not None else None
        if match is None:
            return None
        if layout.unit or self.units:  # keep the first unit given to a series
            self.units = True
            for sid, meta in layout.metas.items():
                register(self.builder, sid, meta)
        else:
            self.builder.series.update(layout.metas)
        known.use(layout)
        return match

    def _columns(
        self,
        values: list[str],
        stamps: list[str],
        layouts: list[tuple[int, ...]],
        taken: list[int],
        exact: list[int],
    ) -> _FastPoints | None:
        """Numbers and timestamps of the fast lines, converted at once; lines with a
        value or timestamp that is wrong go to `exact`."""
        counts = np.fromiter(map(len, layouts), np.int64, len(layouts))
        total = int(counts.sum())
        sids = np.fromiter(chain.from_iterable(layouts), np.int64, total)
        numbers, odd = _numbers(",".join(values), total)
        keep, ts = self._timestamps(stamps)
        if odd.size:
            line_of = np.repeat(np.arange(len(taken)), counts)
            for k in odd.tolist():
                try:
                    numbers[k] = field_value(values[k])
                except LineError:
                    keep[line_of[k]] = False
        if not keep.all():
            exact.extend(np.asarray(taken)[~keep].tolist())
            point_keep = np.repeat(keep, counts)
            sids, numbers = sids[point_keep], numbers[point_keep]
            counts, ts, lines = counts[keep], ts[keep], np.asarray(taken, np.int64)[keep]
        else:
            lines = np.asarray(taken, np.int64)
        if not counts.size:
            return None
        return _FastPoints(sids, np.repeat(ts, counts), numbers, np.repeat(lines + 1, counts))

    def _timestamps(self, stamps: list[str]) -> tuple[Bools, Int64s]:
        """Which fast lines have a usable timestamp, and each line's microseconds."""
        if "" in stamps:
            now = str(self.now_sent)
            stamps = [s or now for s in stamps]
        sent: Int64s | None = None
        if _TIMESTAMPS.fullmatch(",".join(stamps)):
            try:
                sent = np.array(stamps, dtype=np.int64)
            except OverflowError:
                sent = None
        if sent is None:
            ok = np.array([_int64(s) for s in stamps], dtype=bool)
            sent = np.array(
                [int(s) if good else 0 for s, good in zip(stamps, ok, strict=True)], dtype=np.int64
            )
        else:
            ok = np.ones(len(stamps), dtype=bool)
        if self.div > 1:
            us = sent // self.div
        else:
            low, high = -(-MIN_US // self.mul), self.latest_us // self.mul
            ok &= (sent >= low) & (sent <= high)
            us = np.where(ok, sent, 0) * self.mul
        ok &= (us >= MIN_US) & (us <= self.latest_us)
        return ok, us

    # -- the batch -------------------------------------------------------------------

    def _finish(self, fast: _FastPoints | None) -> Batch:
        b = self.builder
        for line_no, message in sorted(self.drops, key=lambda d: d[0]):
            b.drop(f"line {line_no}", message)
        if fast is None and not self.e_sid and not b.state_sids:
            return b.build(allow_empty=True)  # refused when lines were dropped
        if self.e_sid:
            e_sid = np.array(self.e_sid, dtype=np.int64)
            e_ts = np.array(self.e_ts, dtype=np.int64)
            e_value = np.array(self.e_value, dtype=np.float64)
            if fast is None:
                sid, ts, value = e_sid, e_ts, e_value
            else:  # back into line order: a later line wins over an earlier one
                order = np.argsort(
                    np.concatenate((fast.lines, np.array(self.e_line, dtype=np.int64))),
                    kind="stable",
                )
                sid = np.concatenate((fast.sids, e_sid))[order]
                ts = np.concatenate((fast.ts, e_ts))[order]
                value = np.concatenate((fast.values, e_value))[order]
        elif fast is not None:
            sid, ts, value = fast.sids, fast.ts, fast.values
        else:
            sid = ts = np.zeros(0, dtype=np.int64)
            value = np.zeros(0, dtype=np.float64)
        states = None
        if b.state_sids:
            states = States(
                np.array(b.state_sids, dtype=np.int64),
                np.array(b.state_ts, dtype=np.int64),
                b.state_text,
            )
        series = b.series
        if self.drops:  # leave out the series of lines dropped after their keys were read
            used = set(np.unique(sid).tolist()) | set(b.state_sids)
            series = {k: v for k, v in series.items() if k in used}
        return Batch(
            self.ctx.tenant_id,
            sid,
            ts,
            value,
            series,
            states=states,
            dropped=b.dropped,
            dropped_count=b.dropped_count,
        )


class _Key:
    """A measurement-and-tags text as one request's fast path knows it: its (shared)
    entry, and the layout of its previous line in this request as the bound `match`
    of its pattern and its series ids."""

    __slots__ = ("entry", "match", "sids")

    def __init__(self, entry: SeriesEntry | None) -> None:
        self.entry = entry
        self.match: Callable[[str], re.Match[str] | None] = _no_match
        self.sids: tuple[int, ...] = ()

    def use(self, layout: Layout) -> None:
        assert layout.pattern is not None
        self.match = layout.pattern.fullmatch
        self.sids = layout.sids


def _no_match(fields: str) -> None:
    return None


_COMMENT = _Key(None)  # fast path: a comment line
_EXACT = _Key(None)  # fast path: a line for the exact reader (blank, indented, bad key)


class _FastPoints:
    """Columns of the fast lines' points; `lines` is each point's 1-based line number."""

    __slots__ = ("lines", "sids", "ts", "values")

    def __init__(self, sids: Int64s, ts: Int64s, values: Float64s, lines: Int64s) -> None:
        self.sids, self.ts, self.values, self.lines = sids, ts, values, lines


def _int64(text: str) -> bool:
    return _TIMESTAMP.fullmatch(text) is not None and INT64_MIN <= int(text) <= INT64_MAX


def _numbers(text: str, n: int) -> tuple[Float64s, Int64s]:
    """Field values joined by commas -> (float64 of each, indices of the values that are
    not a plain decimal `-?digits[.digits][i|u]` of at most 15 digits: their slot holds
    garbage and the caller converts them one by one with `field_value`).

    A plain decimal is its digits as an exact int64 mantissa divided by an exact power
    of ten, which IEEE division rounds exactly like `float()` does; integers (`i`, `u`)
    become +0.0 for `-0i` like `float(int(...))`.
    """
    if not text:  # no values, or one empty value
        return np.zeros(n, dtype=np.float64), np.arange(n, dtype=np.int64)
    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    size = raw.size
    is_comma = raw == 44
    commas = np.flatnonzero(is_comma)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = commas + 1
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = commas
    ends[-1] = size
    nonempty = ends > starts
    last = raw[np.maximum(ends - 1, 0)]
    first = raw[np.minimum(starts, size - 1)]
    unsigned = last == 117  # u
    suffixed = (last == 105) | unsigned  # i, u
    negative = first == 45  # -
    num_start = starts + negative
    num_end = ends - suffixed
    digit_value = raw - np.uint8(48)
    is_digit = digit_value < 10
    is_dot = raw == 46
    index = np.int32 if size < 2**31 - 1 else np.int64  # cumulative sums in int32 are 2x faster
    digits_before = np.zeros(size + 1, dtype=index)
    np.cumsum(is_digit, out=digits_before[1:])
    n_digits = digits_before[num_end] - digits_before[num_start]
    dots = np.flatnonzero(is_dot)
    value_of = np.cumsum(is_comma, dtype=index)  # the value each byte belongs to
    n_dots = np.bincount(value_of[dots], minlength=n) if dots.size else np.zeros(n, np.int64)
    plain = (
        nonempty
        & (n_digits >= 1)
        & (n_digits <= _MAX_SIMPLE_DIGITS)
        & (n_digits + n_dots == num_end - num_start)
        & (n_dots <= 1)
        & ~(suffixed & (n_dots > 0))
        & ~(unsigned & negative)
    )
    after = digits_before[num_end][value_of] - digits_before[1:]  # digits right of each byte
    np.clip(after, 0, 18, out=after)
    contrib = np.where(is_digit, digit_value.astype(np.int64) * _POW10[after], 0)
    mantissa = np.add.reduceat(contrib, np.minimum(starts, size - 1))
    mantissa[~nonempty] = 0
    fraction = np.zeros(n, dtype=np.int64)
    if dots.size:
        owner = value_of[dots]
        fraction[owner] = digits_before[num_end[owner]] - digits_before[dots + 1]
    np.clip(fraction, 0, 22, out=fraction)
    result = mantissa / _POW10F[fraction]
    np.negative(result, out=result, where=negative)
    np.add(result, 0.0, out=result, where=suffixed)  # -0 as an integer is +0.0
    return result, np.flatnonzero(~plain)
