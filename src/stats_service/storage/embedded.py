"""The embedded store: one DuckDB file under the data dir.

DuckDB allows one writing process per file. Inside this process every write goes
through the single writer thread (`ingest/writer.py`) or the short metadata calls here,
which serialise on `_write_lock`; reads take their own cursor and run concurrently.

DuckDB never shrinks its file: blocks freed by deletes (compaction rewrites a closed
day, the cold tier moves days out) are reused by later writes but stay on disk.
`reclaim()` copies the database into a new file and swaps it in (see its docstring).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import structlog

from ..errors import Conflict, NotFound
from .records import ApiKeyRecord, Tenant
from .schema import MIGRATIONS

log = structlog.get_logger(__name__)

RECLAIM_SUFFIX = ".reclaim"  # the sibling file `reclaim()` copies into
_COPY_ALIAS = "stats_reclaim_copy"


class StoreBusy(RuntimeError):
    """Reads stayed open too long for an operation that needs the store to itself."""


class StoreLocked(RuntimeError):
    """Another process holds the database file (a running server, usually)."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class DatabaseSize:
    """What `PRAGMA database_size` says of the store's file, plus its size on disk."""

    file_bytes: int
    block_size: int
    total_blocks: int
    used_blocks: int
    free_blocks: int

    @property
    def free_bytes(self) -> int:
        return self.free_blocks * self.block_size

    @property
    def free_ratio(self) -> float:
        return self.free_blocks / self.total_blocks if self.total_blocks else 0.0


@dataclass(frozen=True)
class ReclaimReport:
    """The outcome of one `reclaim()`: status is "done", "skipped: <why>" or
    "aborted: <why>" (the old file is kept in the last two cases)."""

    status: str
    bytes_before: int
    bytes_after: int
    free_blocks_before: int
    block_size: int
    seconds: float

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def reclaimed_bytes(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


class _ReaderGate:
    """Counts the cursors handed out by `reader()`; `close()` stops new ones and waits
    for the open ones to finish. (A thread that opens a reader inside another one while
    the gate is closed waits for itself: the reclaim gives up after its timeout and the
    thread goes on. Cursors of a streamed response may move between threads, so the
    gate cannot tell nesting apart.)"""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._shut = False

    def enter(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._shut)
            self._active += 1

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0:
                self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Stop new readers; True once none is open, False (and open again) on timeout."""
        with self._cond:
            self._shut = True
            if self._cond.wait_for(lambda: self._active == 0, timeout):
                return True
            self._shut = False
            self._cond.notify_all()
            return False

    def open(self) -> None:
        with self._cond:
            self._shut = False
            self._cond.notify_all()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _remove_reclaim_leftovers(path: Path) -> None:
    """A copy of an interrupted `reclaim()`: never swapped in, so never needed."""
    for leftover in (_sibling(path, RECLAIM_SUFFIX), _sibling(path, RECLAIM_SUFFIX + ".wal")):
        if leftover.exists():
            log.warning("reclaim_leftover_removed", path=str(leftover))
            leftover.unlink()


class EmbeddedStore:
    """DuckDB-backed store of tenants, keys, devices, series and points."""

    def __init__(self, path: Path, *, memory_limit: str = "1GB", threads: int = 2) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit,
            "threads": threads,
        }
        try:
            self._con = duckdb.connect(str(path), config=self._config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"{path} is in use by another process (is `stats-service serve` running "
                    "on this data dir?)"
                ) from exc
            raise
        # Only once the file is ours: another process's reclaim may be running otherwise.
        _remove_reclaim_leftovers(path)
        self._write_lock = threading.RLock()
        self._readers = _ReaderGate()
        self._closed = False
        self._migrate()

    # -- lifecycle ---------------------------------------------------------------------

    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            con.execute("BEGIN")
            con.execute(sql)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(number)])
            con.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock:
            if not self._closed:
                self._con.execute("CHECKPOINT")
                self._con.close()
                self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        """True when a write transaction can be opened and committed right now."""
        if self._closed:
            return False
        try:
            with self._write_lock:
                self._con.execute("BEGIN")
                self._con.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
                self._con.execute("COMMIT")
            return True
        except duckdb.Error:
            return False

    # -- connections -------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one read; safe to use from any thread."""
        self._readers.enter()
        try:
            cur = self._con.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            self._readers.leave()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The write connection inside BEGIN ... COMMIT (rolled back on error)."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- giving freed space back to the disk ------------------------------------------

    def database_size(
        self, *, checkpoint: bool = False, busy_timeout_s: float = 5.0
    ) -> DatabaseSize:
        """The file's blocks. Blocks freed by deletes count as free only after a
        checkpoint; with `checkpoint`, one is made first, with writes and reads held
        like `reclaim()` does (DuckDB refuses to checkpoint beside another write
        transaction, which a read's temporary objects make too); raises `StoreBusy` if
        open reads do not finish within `busy_timeout_s`."""
        if not checkpoint:
            with self.reader() as cur:
                return self._size(cur)
        with self._write_lock:
            if self._closed:
                raise StoreBusy("the store is closed")
            if not self._readers.close(busy_timeout_s):
                raise StoreBusy(f"reads still open after {busy_timeout_s} s")
            try:
                self._con.execute("CHECKPOINT")
                return self._size(self._con)
            finally:
                self._readers.open()

    def _size(self, con: duckdb.DuckDBPyConnection) -> DatabaseSize:
        row = con.execute(
            "SELECT block_size, total_blocks, used_blocks, free_blocks "
            "FROM pragma_database_size() WHERE database_name = current_database()"
        ).fetchall()[0]
        return DatabaseSize(self.path.stat().st_size, *(int(v) for v in row))

    def reclaim(self, *, busy_timeout_s: float = 5.0) -> ReclaimReport:
        """Rewrite the file without its free blocks, online; returns what it did.

        Holds the write lock throughout (writes wait), stops new readers and waits up to
        `busy_timeout_s` for open ones (returns "skipped: busy" if they do not finish;
        they wait meanwhile and go on unharmed). Then: CHECKPOINT (the WAL is empty), copy
        everything into `<file>.reclaim` (ATTACH + COPY FROM DATABASE, in storage order,
        so compacted days stay sorted), check the copy (every table's row count, the
        views, macros, indexes, constraints and types, every sequence's next value), DETACH
        it (a checkpoint), fsync it, close the old connection, `os.replace` the copy over
        the file, fsync the directory, reconnect. Readers waiting at the gate then read
        the new file.

        Crash safety: until `os.replace` the old file is untouched and holds everything
        (a leftover copy is deleted at the next open); `os.replace` is atomic, and the
        copy is complete and durable before it. The old file's WAL is empty (checkpoint,
        then a clean close) before the swap, so no old WAL can be replayed into the new
        file; if one is left the swap is aborted.
        """
        started = time.monotonic()
        with self._write_lock:
            if self._closed:
                return ReclaimReport("skipped: closed", 0, 0, 0, 0, 0.0)
            if not self._readers.close(busy_timeout_s):
                size = self._size(self._con)
                log.warning("reclaim_skipped_busy", timeout_s=busy_timeout_s)
                return ReclaimReport(
                    "skipped: busy",
                    size.file_bytes,
                    size.file_bytes,
                    size.free_blocks,
                    size.block_size,
                    time.monotonic() - started,
                )
            try:
                before = self._size(self._con)
                status = self._swap_in_copy()
                after = self.path.stat().st_size if status == "done" else before.file_bytes
            finally:
                self._readers.open()
        report = ReclaimReport(
            status,
            before.file_bytes,
            after,
            before.free_blocks,
            before.block_size,
            time.monotonic() - started,
        )
        log.info(
            "reclaim",
            status=status,
            bytes_before=report.bytes_before,
            bytes_after=report.bytes_after,
            free_blocks_before=report.free_blocks_before,
            seconds=round(report.seconds, 3),
        )
        return report

    def _swap_in_copy(self) -> str:
        """The body of `reclaim()`, under the write lock with no reader open."""
        copy = _sibling(self.path, RECLAIM_SUFFIX)
        copy_wal = _sibling(self.path, RECLAIM_SUFFIX + ".wal")
        old_wal = _sibling(self.path, ".wal")
        con = self._con
        attached = disconnected = swapped = False
        try:
            con.execute("CHECKPOINT")
            _remove_reclaim_leftovers(self.path)
            source = str(con.execute("SELECT current_database()").fetchall()[0][0])
            con.execute(f"ATTACH '{_quote_str(str(copy))}' AS {_COPY_ALIAS}")
            attached = True
            con.execute(f"COPY FROM DATABASE {_ident(source)} TO {_COPY_ALIAS}")
            problem = _align_sequences(con, source, _COPY_ALIAS) or _compare_catalogs(
                con, source, _COPY_ALIAS
            )
            if problem:
                log.error("reclaim_copy_differs", problem=problem)
                return f"aborted: {problem}"
            marker = uuid.uuid4().hex  # proves the reconnect below opened the copy
            con.execute(
                f"INSERT OR REPLACE INTO {_COPY_ALIAS}.main.meta VALUES ('reclaim_id', ?)",
                [marker],
            )
            con.execute(f"DETACH {_COPY_ALIAS}")
            attached = False
            if copy_wal.exists() and copy_wal.stat().st_size > 0:
                return "aborted: the copy kept a WAL after DETACH"
            _fsync(copy)
            con.close()
            disconnected = True
            if old_wal.exists():
                if old_wal.stat().st_size > 0:
                    return "aborted: the old file kept a WAL after closing"
                old_wal.unlink()  # empty; it must not sit beside the new file
            os.replace(copy, self.path)
            swapped = True
            _fsync(self.path.parent)
        except (duckdb.Error, OSError) as exc:
            if swapped:
                raise  # the new file is in place; reconnecting below is all that is left
            log.error("reclaim_failed", error=str(exc))
            return f"aborted: {exc}"
        finally:
            if attached:
                with suppress(duckdb.Error):
                    con.execute(f"DETACH {_COPY_ALIAS}")
            if not swapped:
                with suppress(OSError):
                    copy.unlink(missing_ok=True)
                with suppress(OSError):
                    copy_wal.unlink(missing_ok=True)
            if disconnected:
                self._con = duckdb.connect(str(self.path), config=self._config)
        row = self._con.execute("SELECT value FROM meta WHERE key = 'reclaim_id'").fetchall()
        if row != [(marker,)]:
            raise RuntimeError(f"{self.path}: reopened after reclaim, but not the copy")
        return "done"

    # -- tenants -----------------------------------------------------------------------

    def create_tenant(
        self, name: str, *, retention_days: int, max_series: int, max_batch_points: int
    ) -> Tenant:
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM tenants WHERE name = ?", [name]).fetchone():
                raise Conflict(f"tenant {name!r} already exists")
            row = con.execute(
                "INSERT INTO tenants (id, name, created_at, retention_days, max_series, "
                "max_batch_points) VALUES (nextval('tenant_ids'), ?, ?, ?, ?, ?) RETURNING *",
                [name, utcnow(), retention_days, max_series, max_batch_points],
            ).fetchone()
        assert row is not None
        return Tenant.from_row(row)

    def update_tenant(self, name: str, **changes: int | bool) -> Tenant:
        allowed = {
            "retention_days",
            "max_series",
            "max_batch_points",
            "anonymous_write",
            "anonymous_read",
        }
        sets = [k for k in changes if k in allowed]
        with self.transaction() as con:
            if sets:
                con.execute(
                    f"UPDATE tenants SET {', '.join(f'{k} = ?' for k in sets)} WHERE name = ?",
                    [changes[k] for k in sets] + [name],
                )
            row = con.execute("SELECT * FROM tenants WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"tenant {name!r} does not exist")
        return Tenant.from_row(row)

    def get_tenant(self, name: str) -> Tenant | None:
        with self.reader() as cur:
            row = cur.execute("SELECT * FROM tenants WHERE name = ?", [name]).fetchone()
        return Tenant.from_row(row) if row else None

    def get_tenant_by_id(self, tenant_id: int) -> Tenant | None:
        with self.reader() as cur:
            row = cur.execute("SELECT * FROM tenants WHERE id = ?", [tenant_id]).fetchone()
        return Tenant.from_row(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        with self.reader() as cur:
            rows = cur.execute("SELECT * FROM tenants ORDER BY id").fetchall()
        return [Tenant.from_row(r) for r in rows]

    # -- API keys (only hashes are stored) -----------------------------------------------

    def add_key(self, record: ApiKeyRecord, key_hash: str) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO api_keys (id, tenant_id, role, key_hash, prefix, name, created_at, "
                "device) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    record.id,
                    record.tenant_id,
                    record.role,
                    key_hash,
                    record.prefix,
                    record.name,
                    record.created_at,
                    record.device,
                ],
            )

    def find_key(self, key_hash: str) -> tuple[ApiKeyRecord, Tenant, str] | None:
        """The key record, its tenant and the stored hash, for a hash of a presented key."""
        with self.reader() as cur:
            row = cur.execute(
                f"SELECT {ApiKeyRecord.COLUMNS}, k.key_hash, t.* FROM api_keys k "
                "JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?",
                [key_hash],
            ).fetchone()
        if row is None:
            return None
        n = ApiKeyRecord.NCOLS
        return ApiKeyRecord.from_row(row[:n]), Tenant.from_row(row[n + 1 :]), str(row[n])

    def list_keys(self, tenant_id: int | None) -> list[ApiKeyRecord]:
        sql = f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        params: list[Any] = []
        if tenant_id is not None:
            sql += " WHERE k.tenant_id = ?"
            params.append(tenant_id)
        with self.reader() as cur:
            rows = cur.execute(sql + " ORDER BY k.created_at, k.id", params).fetchall()
        return [ApiKeyRecord.from_row(r) for r in rows]

    def revoke_key(self, key_id: str, tenant_id: int | None) -> ApiKeyRecord:
        with self.transaction() as con:
            params: list[Any] = [key_id]
            scope = ""
            if tenant_id is not None:
                scope = " AND k.tenant_id = ?"
                params.append(tenant_id)
            row = con.execute(
                f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t "
                f"ON t.id = k.tenant_id WHERE k.id = ?{scope}",
                params,
            ).fetchone()
            if row is None:
                raise NotFound(f"API key {key_id!r} does not exist")
            con.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                [utcnow(), key_id],
            )
            row = con.execute(
                f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t "
                "ON t.id = k.tenant_id WHERE k.id = ?",
                [key_id],
            ).fetchone()
        assert row is not None
        return ApiKeyRecord.from_row(row)

    def count_keys(self, tenant_id: int) -> int:
        with self.reader() as cur:
            row = cur.execute(
                "SELECT count(*) FROM api_keys WHERE tenant_id = ?", [tenant_id]
            ).fetchone()
        return int(row[0]) if row else 0

    # -- series bookkeeping used by the pipeline -----------------------------------------

    def series_count(self, tenant_id: int) -> int:
        with self.reader() as cur:
            row = cur.execute(
                "SELECT count(*) FROM series WHERE tenant_id = ?", [tenant_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def known_series(self, ids: list[int]) -> dict[int, str]:
        """Canonical keys of those of `ids` that already exist."""
        if not ids:
            return {}
        with self.reader() as cur:
            rows = cur.execute(
                "SELECT id, canonical FROM series WHERE id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def ensure_database(self, tenant_id: int, name: str, *, create: bool) -> bool:
        """Whether the tenant has the named (InfluxDB) database; creates it when asked."""
        with self.reader() as cur:
            found = cur.execute(
                "SELECT 1 FROM databases WHERE tenant_id = ? AND name = ?", [tenant_id, name]
            ).fetchall()
        if found:
            return True
        if not create:
            return False
        with self.transaction() as con:
            con.execute(
                "INSERT INTO databases VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [tenant_id, name, utcnow()],
            )
        return True

    def list_databases(self, tenant_id: int) -> list[str]:
        with self.reader() as cur:
            rows = cur.execute(
                "SELECT name FROM databases WHERE tenant_id = ? ORDER BY name", [tenant_id]
            ).fetchall()
        return [str(r[0]) for r in rows]

    def idempotent_response(self, batch_id: str) -> tuple[str, str] | None:
        """(body hash, stored response JSON) of an already committed keyed batch."""
        with self.reader() as cur:
            row = cur.execute(
                "SELECT body_hash, response FROM idempotency WHERE batch_id = ?", [batch_id]
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return text.replace("'", "''")


def _next_values(con: duckdb.DuckDBPyConnection, db: str) -> dict[tuple[str, str], int]:
    """The value each sequence of `db` hands out next."""
    rows = con.execute(
        "SELECT schema_name, sequence_name, start_value, increment_by, last_value "
        "FROM duckdb_sequences() WHERE database_name = ?",
        [db],
    ).fetchall()
    return {
        (str(r[0]), str(r[1])): int(r[2]) if r[4] is None else int(r[4]) + int(r[3]) for r in rows
    }


def _align_sequences(con: duckdb.DuckDBPyConnection, source: str, target: str) -> str:
    """Advance any sequence of the copy that would hand out a value the source already
    has (the copy must never reuse an id); "" when all agree afterwards."""
    want = _next_values(con, source)
    steps = {
        (str(r[0]), str(r[1])): int(r[2])
        for r in con.execute(
            "SELECT schema_name, sequence_name, increment_by FROM duckdb_sequences() "
            "WHERE database_name = ?",
            [source],
        ).fetchall()
    }
    for key, next_value in _next_values(con, target).items():
        if key not in want:
            continue
        behind = (want[key] - next_value) // steps[key]
        if behind > 0:
            name = ".".join(_ident(part) for part in (target, *key))
            con.execute(f"SELECT max(nextval('{_quote_str(name)}')) FROM range(?)", [behind])
    got = _next_values(con, target)
    for key, next_value in want.items():
        if got.get(key) != next_value:
            return f"sequence {key[0]}.{key[1]}: next value {got.get(key)} != {next_value}"
    return ""


def _catalog(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[tuple[Any, ...]]]:
    """The objects of `db` by kind, and every table's row count."""
    queries = {
        "views": "SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = ? AND NOT internal",
        "macros": "SELECT DISTINCT schema_name, function_name, function_type "
        "FROM duckdb_functions() WHERE database_name = ? AND NOT internal",
        "indexes": "SELECT schema_name, index_name, table_name, is_unique "
        "FROM duckdb_indexes() WHERE database_name = ?",
        "constraints": "SELECT schema_name, table_name, constraint_type, "
        "constraint_column_names FROM duckdb_constraints() WHERE database_name = ?",
        "types": "SELECT schema_name, type_name FROM duckdb_types() "
        "WHERE database_name = ? AND NOT internal",
        "tables": "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = ? AND NOT internal",
    }
    found = {
        kind: sorted(tuple(map(str, r)) for r in con.execute(sql, [db]).fetchall())
        for kind, sql in queries.items()
    }
    found["rows"] = [
        (
            schema,
            table,
            con.execute(
                f"SELECT count(*) FROM {_ident(db)}.{_ident(schema)}.{_ident(table)}"
            ).fetchall()[0][0],
        )
        for schema, table in found["tables"]
    ]
    return found


def _compare_catalogs(con: duckdb.DuckDBPyConnection, source: str, target: str) -> str:
    """ "" when the copy has the same objects and row counts as the source."""
    old, new = _catalog(con, source), _catalog(con, target)
    for kind, items in old.items():
        if new[kind] != items:
            missing = sorted(set(items) - set(new[kind]))
            extra = sorted(set(new[kind]) - set(items))
            return f"{kind} differ: missing {missing[:3]}, unexpected {extra[:3]}"
    return ""
