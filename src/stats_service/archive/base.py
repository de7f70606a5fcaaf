"""The raw archive seam: immutable objects under deterministic keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Archive(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`; an existing key is never overwritten."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix`, in lexical order."""

    def children(self, prefix: str) -> list[str]:
        """Names one level below the folder `prefix` (ending in '/'), sorted."""

    def delete(self, key: str) -> None:
        """Remove the object under `key` (nothing when it does not exist)."""
