"""Export encoders: the SQL select list of each format and its Arrow batches to bytes.

DuckDB does the per-row work (formatting times, building JSON text); Python only moves
whole buffers, so throughput does not depend on the number of rows in a batch.

    csv      header once, then pyarrow's CSV writer per batch
    json     one JSON array, streamed: `[`, rows separated by `,\\n`, `]`
    ndjson   one JSON object per line
    parquet  pyarrow.parquet.ParquetWriter, one row group per batch, drained as written
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its name, its SQL expression and what it holds."""

    name: str
    sql: str
    kind: str  # time | id | text | number | count


class Encoder:
    """Base: the select list (aliases c0, c1, ...) and the bytes of each stage."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.names = [c.name for c in columns]

    def select(self) -> tuple[str, list[Any]]:
        return ", ".join(f"{c.sql} AS c{i}" for i, c in enumerate(self.columns)), []

    def begin(self, schema: pa.Schema) -> bytes:
        return b""

    def batch(self, batch: pa.RecordBatch) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        return b""

    def _named(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(batch.columns, names=self.names)


class CsvEncoder(Encoder):
    def select(self) -> tuple[str, list[Any]]:
        parts = []
        for i, c in enumerate(self.columns):
            sql = f"strftime({c.sql}, '{TIME_FORMAT}')" if c.kind == "time" else c.sql
            parts.append(f"{sql} AS c{i}")
        return ", ".join(parts), []

    def begin(self, schema: pa.Schema) -> bytes:
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(self.names)
        return text.getvalue().encode()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(self._named(batch), sink, pa_csv.WriteOptions(include_header=False))
        return bytes(sink.getvalue())


class JsonEncoder(Encoder):
    """JSON objects built by DuckDB; `lines` for NDJSON, else one streamed array."""

    def __init__(self, columns: list[Column], *, lines: bool) -> None:
        super().__init__(columns)
        self.lines = lines
        self._first = True

    def select(self) -> tuple[str, list[Any]]:
        pairs = ", ".join(f"?, {_json_value(c)}" for c in self.columns)
        line = f"json_object({pairs})"
        sql = f"{line} || chr(10)" if self.lines else f"',' || chr(10) || {line}"
        return f"{sql} AS c0", list(self.names)

    def begin(self, schema: pa.Schema) -> bytes:
        return b"" if self.lines else b"["

    def batch(self, batch: pa.RecordBatch) -> bytes:
        data = string_bytes(batch.column(0))
        if not self.lines and self._first and data:
            data, self._first = data[1:], False  # no comma before the first row
        return data

    def end(self) -> bytes:
        return b"" if self.lines else b"\n]\n"


class ParquetEncoder(Encoder):
    def __init__(self, columns: list[Column]) -> None:
        super().__init__(columns)
        self._sink = DrainingSink()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def begin(self, schema: pa.Schema) -> bytes:
        fields = [
            pa.field(name, pa.timestamp("us", tz="UTC") if c.kind == "time" else f.type)
            for name, c, f in zip(self.names, self.columns, schema, strict=True)
        ]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd")
        return self._sink.drain()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        assert self._writer is not None and self._schema is not None
        arrays = [a.cast(f.type) for a, f in zip(batch.columns, self._schema, strict=True)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        return self._sink.drain()

    def end(self) -> bytes:
        if self._writer is not None:
            self._writer.close()
        return self._sink.drain()


class DrainingSink:
    """A write-only file for ParquetWriter whose bytes are taken away as they come."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


def _json_value(column: Column) -> str:
    if column.kind == "time":
        return f"strftime({column.sql}, '{TIME_FORMAT}')"
    if column.kind == "id":
        return f"({column.sql})::VARCHAR"
    if column.kind == "number":
        return f"CASE WHEN isfinite({column.sql}) THEN {column.sql} END"
    return column.sql


def string_bytes(array: pa.Array) -> bytes:
    """The concatenated values of a string array without nulls, straight from its buffer."""
    if len(array) == 0:
        return b""
    if array.type not in (pa.string(), pa.large_string()):
        array = array.cast(pa.large_string())
    width = np.dtype(np.int32 if array.type == pa.string() else np.int64)
    offsets = np.frombuffer(
        array.buffers()[1], dtype=width, count=len(array) + 1, offset=array.offset * width.itemsize
    )
    start, end = int(offsets[0]), int(offsets[-1])
    data = array.buffers()[2]
    return data.slice(start, end - start).to_pybytes() if data is not None else b""


ENCODERS: dict[str, tuple[str, str, Callable[[list[Column]], Encoder]]] = {
    "csv": ("text/csv; charset=utf-8", "csv", CsvEncoder),
    "json": ("application/json", "json", lambda cols: JsonEncoder(cols, lines=False)),
    "ndjson": ("application/x-ndjson", "ndjson", lambda cols: JsonEncoder(cols, lines=True)),
    "parquet": ("application/vnd.apache.parquet", "parquet", ParquetEncoder),
}
