"""The cold tier's optional S3-compatible bucket, and the local cache reads go through.

When a bucket is configured, a cold day file is uploaded after it is written locally,
under `<prefix>/tenant=<id>/day=YYYY-MM-DD.parquet`, and the catalog (`cold_files.path`)
records `s3://<bucket>/<key>#<etag>`: the object and the exact version of it the catalog
promises. The local copy then becomes an entry of the cache.

DuckDB's httpfs extension is not used (it is downloaded at run time, which a host without
internet cannot do): a read fetches the objects it needs into the cache directory first
and gives `read_parquet` the cached paths. The cache is bounded (`cold_s3_cache_mb`) and
evicts the least recently used files; a cached file is used only when its name carries
the catalog's ETag and its size is the catalog's; a download is verified against the
object's Content-Length and its ETag (the MD5 of the body: uploads are single-part).

Reads reach the fetcher through a DuckDB scalar function registered on the store's
connection (`attach`), so every cursor of the store sees it without the object store
having to be threaded through each query module; a store without it fails loudly on a
catalog row that points into a bucket.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from ..config import Settings
    from .embedded import EmbeddedStore

log = structlog.get_logger(__name__)

SCHEME = "s3://"
FETCH_FUNCTION = "stats_cold_fetch"


class ColdObjectError(RuntimeError):
    """An upload, download or verification against the bucket failed."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}#{self.etag}"

    @property
    def location(self) -> str:
        """The object without its version: what reconciliation compares."""
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_object_url(path: str) -> bool:
    return path.startswith(SCHEME)


def parse_url(url: str) -> ObjectRef:
    rest, _, etag = url[len(SCHEME) :].rpartition("#")
    bucket, _, key = rest.partition("/")
    if not bucket or not key or not etag:
        raise ColdObjectError(f"malformed cold object reference {url!r}")
    return ObjectRef(bucket, key, etag)


def _md5_file(path: Path) -> tuple[str, str]:
    """(hex, base64) MD5 of the file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), base64.b64encode(digest.digest()).decode()


class ColdObjects:
    """One bucket (and prefix) of cold files plus the bounded local cache of them."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        prefix: str,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        cache_dir: Path,
        cache_bytes: int,
        timeout_s: float = 10.0,
        evict_grace_s: float = 60.0,
    ) -> None:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = cache_dir.resolve()
        self.cache_bytes = cache_bytes
        # A file used this recently is not evicted: a query that was just given its
        # path may not have opened it yet.
        self.evict_grace_s = evict_grace_s
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ColdObjects | None:
        if not settings.cold_s3_bucket:
            return None
        secret = settings.cold_s3_secret_access_key
        return cls(
            endpoint_url=settings.cold_s3_endpoint_url,
            bucket=settings.cold_s3_bucket,
            prefix=settings.cold_s3_prefix,
            region=settings.cold_s3_region,
            access_key_id=settings.cold_s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            cache_dir=settings.cold_s3_cache_path,
            cache_bytes=int(settings.cold_s3_cache_mb * 1024 * 1024),
        )

    # -- keys --------------------------------------------------------------------------

    def key_for(self, tenant_id: int, day: date) -> str:
        name = f"tenant={tenant_id}/day={day.isoformat()}.parquet"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _cache_path(self, ref: ObjectRef) -> Path:
        parts = ref.key.split("/")
        tenant, stem = parts[-2], parts[-1].removesuffix(".parquet")
        return self.cache_dir / tenant / f"{stem}.{ref.etag}.parquet"

    # -- bucket ------------------------------------------------------------------------

    def upload(self, path: Path, key: str) -> ObjectRef:
        """Upload one file and verify it: the server checks Content-MD5, then a HEAD must
        report our size and MD5. Raises ColdObjectError (the caller keeps its rows hot)."""
        size = path.stat().st_size
        md5_hex, md5_b64 = _md5_file(path)
        try:
            with path.open("rb") as body:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentMD5=md5_b64,
                    ContentLength=size,
                )
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # botocore raises many unrelated types
            raise ColdObjectError(f"upload of {key} failed: {exc}") from exc
        etag = str(head.get("ETag", "")).strip('"')
        if int(head.get("ContentLength", -1)) != size or etag != md5_hex:
            raise ColdObjectError(
                f"upload of {key} not verified: {head.get('ContentLength')} bytes, "
                f"ETag {etag!r}, expected {size} bytes, MD5 {md5_hex}"
            )
        return ObjectRef(self.bucket, key, etag)

    def head(self, key: str) -> tuple[str, int] | None:
        """(etag, size) of the object, None when it does not exist."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            response = getattr(exc, "response", None) or {}
            if str(response.get("Error", {}).get("Code")) in {"404", "NoSuchKey"}:
                return None
            raise ColdObjectError(f"HEAD {key} failed: {exc}") from exc
        return str(head["ETag"]).strip('"'), int(head["ContentLength"])

    def delete(self, ref: ObjectRef) -> None:
        try:
            self._client.delete_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as exc:
            raise ColdObjectError(f"delete of {ref.key} failed: {exc}") from exc
        for cached in self._cached_versions(ref):
            cached.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        """Every cold object key under the prefix."""
        start = f"{self.prefix}/tenant=" if self.prefix else "tenant="
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    yield str(item["Key"])
        except Exception as exc:
            raise ColdObjectError(f"listing {self.bucket}/{start} failed: {exc}") from exc

    # -- cache -------------------------------------------------------------------------

    def _cached_versions(self, ref: ObjectRef) -> list[Path]:
        probe = self._cache_path(ref)
        stem = probe.name.split(".", 1)[0]
        return list(probe.parent.glob(f"{stem}.*.parquet")) if probe.parent.is_dir() else []

    def adopt(self, local: Path, ref: ObjectRef) -> None:
        """Make the just-uploaded local file the cache entry of `ref` (or drop it when the
        cache is elsewhere on another file system)."""
        target = self._cache_path(ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for old in self._cached_versions(ref):
                if old != target:
                    old.unlink(missing_ok=True)
            try:
                os.replace(local, target)
            except OSError:
                local.unlink(missing_ok=True)
                return
            self._evict(keep={target})

    def fetch(self, url: str, size: int) -> Path:
        """The local path of the catalog's object `url` of `size` bytes."""
        return self.fetch_all([(url, size)])[0]

    def fetch_all(self, wanted: list[tuple[str, int]]) -> list[Path]:
        """Local paths of the catalog's objects (url, bytes), downloaded into the cache
        when not there (or not the right version/size). Files of one call are never
        evicted by that call: one query's files are all there when it runs, even when
        together they exceed the bound (the cache shrinks back on the next fetch)."""
        targets: list[Path] = []
        with self._lock:
            for url, size in wanted:
                ref = parse_url(url)
                target = self._cache_path(ref)
                targets.append(target)
                if target.is_file() and target.stat().st_size == size:
                    os.utime(target)  # most recently used
                    continue
                self._download(ref, target, size)
                for old in self._cached_versions(ref):
                    if old != target:
                        old.unlink(missing_ok=True)
            self._evict(keep=set(targets))
        return targets

    def _download(self, ref: ObjectRef, target: Path, size: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        digest = hashlib.md5(usedforsecurity=False)
        try:
            got = self._client.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=ref.etag)
            written = 0
            with tmp.open("wb") as out:
                for block in got["Body"].iter_chunks(1 << 20):
                    digest.update(block)
                    out.write(block)
                    written += len(block)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise ColdObjectError(f"download of {ref.key} failed: {exc}") from exc
        if written != size or digest.hexdigest() != ref.etag:
            tmp.unlink(missing_ok=True)
            raise ColdObjectError(
                f"download of {ref.key} not verified: {written} bytes, MD5 "
                f"{digest.hexdigest()}, catalog expects {size} bytes, ETag {ref.etag}"
            )
        os.replace(tmp, target)
        log.info("cold_object_fetched", key=ref.key, bytes=size)

    def _evict(self, keep: set[Path]) -> None:
        """Remove least recently used files until the cache fits its bound."""
        files = []
        for path in self.cache_dir.glob("tenant=*/day=*.parquet"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed meanwhile (retention)
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(f[1] for f in files)
        now = time.time()
        for mtime, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            if path in keep or now - mtime < self.evict_grace_s:
                continue
            path.unlink(missing_ok=True)
            total -= size
            log.info("cold_cache_evicted", path=str(path), bytes=size)

    def cached_files(self) -> list[Path]:
        return sorted(self.cache_dir.glob("tenant=*/day=*.parquet"))

    # -- wiring ------------------------------------------------------------------------

    def attach(self, store: EmbeddedStore) -> None:
        """Register the fetcher on the store's connection: `stats_cold_fetch(urls, sizes)`
        returns the cached local paths (every cursor of the store sees the function)."""

        def fetch(urls: list[str], sizes: list[int]) -> list[str]:
            got = self.fetch_all([(u, int(n)) for u, n in zip(urls, sizes, strict=True)])
            return [str(p) for p in got]

        with store.transaction() as con:
            con.create_function(
                FETCH_FUNCTION, fetch, ["VARCHAR[]", "BIGINT[]"], "VARCHAR[]", side_effects=True
            )
