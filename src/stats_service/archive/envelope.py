"""Archived payloads: each accepted request as one zstd frame holding a JSON envelope.

The writer concatenates the frames of one commit group into one object
`raw/<tenant>/<yyyy>/<mm>/<dd>/<hh>/<first batch_id>.ndjson.zst` (a valid zstd stream:
frames decode back to back), so the archive holds a few objects a second, not one per
request. Each line keeps everything needed to parse the payload again.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
import zstandard


@dataclass(frozen=True, slots=True)
class Envelope:
    batch_id: str
    tenant: str
    tenant_id: int
    protocol: str
    received_at: datetime
    params: dict[str, str]
    body: bytes
    idempotency_key: str | None = None

    def to_frame(self, level: int) -> bytes:
        try:
            text, encoding = self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(self.body).decode(), "base64"
        line = orjson.dumps(
            {
                "v": 1,
                "batch_id": self.batch_id,
                "tenant": self.tenant,
                "tenant_id": self.tenant_id,
                "protocol": self.protocol,
                "received_at": self.received_at.isoformat() + "Z",
                "params": self.params,
                "idempotency_key": self.idempotency_key,
                "encoding": encoding,
                "body": text,
            }
        )
        return _compressor(level).compress(line + b"\n")

    @classmethod
    def from_line(cls, line: bytes) -> Envelope:
        doc = orjson.loads(line)
        body = doc["body"].encode() if doc["encoding"] == "utf-8" else base64.b64decode(doc["body"])
        return cls(
            batch_id=doc["batch_id"],
            tenant=doc["tenant"],
            tenant_id=int(doc["tenant_id"]),
            protocol=doc["protocol"],
            received_at=datetime.fromisoformat(doc["received_at"].rstrip("Z")),
            params=dict(doc["params"]),
            body=body,
            idempotency_key=doc.get("idempotency_key"),
        )


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level (a compressor is not thread-safe)."""
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("by_level", {})
    found = cache.get(level)
    if found is None:
        found = cache[level] = zstandard.ZstdCompressor(level=level)
    return found


def archive_key(tenant: str, received_at: datetime, batch_id: str) -> str:
    return f"raw/{tenant}/{received_at:%Y/%m/%d/%H}/{batch_id}.ndjson.zst"


def read_object(data: bytes) -> Iterator[Envelope]:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    for line in io.BufferedReader(reader):
        if line.strip():
            yield Envelope.from_line(line)
