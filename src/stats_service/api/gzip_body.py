"""Request bodies sent with `Content-Encoding: gzip`, inflated with a hard size limit.

A few kilobytes of gzip can inflate to gigabytes, so the inflated size is checked while
inflating (zlib's `max_length`), never after: a body that would pass the limit is
refused with 413 as soon as it does, with at most `limit + 1` bytes held in memory.
"""

from __future__ import annotations

import zlib

import anyio
from fastapi import Request

from ..errors import BadRequest, PayloadTooLarge
from .routers.ingest import read_body

GZIP_WBITS = 16 + zlib.MAX_WBITS
INLINE_INFLATE_BYTES = 64 * 1024  # larger compressed bodies are inflated off the event loop


def inflate(data: bytes, limit: int) -> bytes:
    """The gzip stream(s) in `data` inflated; PayloadTooLarge once past `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    pending = data
    inflater = zlib.decompressobj(GZIP_WBITS)
    try:
        while True:
            piece = inflater.decompress(pending, limit + 1 - size)
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge(
                    f"the gzip body inflates to more than the limit of {limit} bytes"
                )
            parts.append(piece)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                if not rest.strip(b"\x00"):
                    break
                # concatenated gzip members, as `cat a.gz b.gz` makes: read on
                pending = rest
                inflater = zlib.decompressobj(GZIP_WBITS)
            elif not pending and not piece:
                raise BadRequest("unable to decode gzip body: unexpected end of the gzip stream")
    except zlib.error as exc:
        raise BadRequest(f"unable to decode gzip body: {exc}") from None
    return b"".join(parts)


async def read_payload(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes on the wire and, inflated, in memory."""
    body = await read_body(request, limit)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}: send gzip or identity")
    if not body:
        return body
    if len(body) <= INLINE_INFLATE_BYTES:
        return inflate(body, limit)
    return await anyio.to_thread.run_sync(inflate, body, limit)
