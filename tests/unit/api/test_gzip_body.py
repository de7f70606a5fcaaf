"""Bounded gzip inflation: bombs refused while inflating, streams concatenated, errors clear."""

from __future__ import annotations

import gzip
import zlib

import pytest

from stats_service.api.gzip_body import inflate
from stats_service.errors import BadRequest, PayloadTooLarge


def test_inflates_a_body_under_the_limit() -> None:
    data = b"m v=1\n" * 1000
    assert inflate(gzip.compress(data), len(data)) == data


def test_refuses_one_byte_over_the_limit() -> None:
    data = b"x" * 1001
    with pytest.raises(PayloadTooLarge):
        inflate(gzip.compress(data), 1000)


def test_a_bomb_is_refused_without_inflating_it_all() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * 1_000_000
    bomb = b"".join(packer.compress(chunk) for _ in range(200)) + packer.flush()
    assert len(bomb) < 250_000  # 200 MB inflated
    with pytest.raises(PayloadTooLarge, match="inflates to more than"):
        inflate(bomb, 1024 * 1024)


def test_concatenated_members_are_read_like_gzip_does() -> None:
    body = gzip.compress(b"a v=1\n") + gzip.compress(b"b v=2\n")
    assert inflate(body, 1000) == b"a v=1\nb v=2\n"
    with pytest.raises(PayloadTooLarge):
        inflate(body, 8)


@pytest.mark.parametrize(
    "body",
    [b"plain text", gzip.compress(b"m v=1\n" * 100)[:-30], zlib.compress(b"zlib, not gzip")],
)
def test_broken_streams_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest, match="unable to decode gzip body"):
        inflate(body, 10_000)
