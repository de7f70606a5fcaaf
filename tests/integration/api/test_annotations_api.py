"""Chart annotations (marks and bands) against the real app: create, list with every
filter, range overlap, cursor pages, delete, validation, roles, tenant isolation, the
helper other features call, and the migration of a version-6 database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, new_key, new_tenant
from stats_service.errors import NotFound
from stats_service.services import Services
from stats_service.storage import annotations as annotations_store
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.schema import MIGRATIONS

T0 = "2026-03-01T12:00:00Z"
T0_US = 1_772_366_400_000_000
MIN_US = 60_000_000
HOUR = "2026-03-01T13:00:00Z"


def ingest(client: TestClient, headers: dict[str, str], device: str, *metrics: str) -> None:
    now = int(time.time())
    points = [{"ts": now - 60 * i, "values": {m: float(i) for m in metrics}} for i in range(3)]
    answer = client.post(
        "/v1/ingest?precision=s", json={"device": device, "points": points}, headers=headers
    )
    assert answer.status_code == 202, answer.text


def series_of(client: TestClient, headers: dict[str, str], device: str) -> dict[str, str]:
    items = client.get("/v1/series", params={"device": device}, headers=headers).json()["items"]
    return {s["metric"]: s["id"] for s in items}


def post(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/annotations", json=body, headers=headers)


def made(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = post(client, headers, **body)
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()
    return out


def listed(client: TestClient, headers: dict[str, str], **params: Any) -> list[str]:
    answer = client.get("/v1/annotations", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return [a["title"] for a in answer.json()["items"]]


@pytest.fixture
def world(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    ingest(client, admin, "esp32-01", "temperature", "humidity")
    ingest(client, admin, "esp32-02", "temperature")
    ids = series_of(client, admin, "esp32-01")
    return {"temp": ids["temperature"], "hum": ids["humidity"]}


def test_create_mark_and_band_and_read_back(
    client: TestClient, admin: dict[str, str], world: dict[str, str]
) -> None:
    mark = made(client, admin, device="esp32-01", start=T0, title="firmware 1.2 deployed")
    assert mark["kind"] == "note" and mark["severity"] == "info" and mark["source"] == "user"
    assert mark["start"] == "2026-03-01T12:00:00.000000Z" and mark["end"] is None
    assert mark["device"] == "esp32-01" and mark["series_id"] is None
    assert mark["created_by"] and mark["tags"] == [] and mark["meta"] == {}
    band = made(
        client,
        admin,
        kind="anomaly",
        series_id=world["temp"],
        start=T0_US // 1_000_000 + 600,  # epoch seconds
        end="2026-03-01T12:20:00+00:00",
        title="temperature spike",
        text="z-score 4.2 over 10 minutes",
        severity="warning",
        source="detector:zscore",
        tags=["spike"],
        meta={"score": 4.2},
    )
    assert band["device"] == "esp32-01"  # the series' device, filled in
    assert band["series_id"] == world["temp"]
    assert (band["start"], band["end"]) == (
        "2026-03-01T12:10:00.000000Z",
        "2026-03-01T12:20:00.000000Z",
    )
    assert band["meta"] == {"score": 4.2} and band["tags"] == ["spike"]
    got = client.get(f"/v1/annotations/{band['id']}", headers=admin)
    assert got.status_code == 200 and got.json() == band
    relative = made(client, admin, start="now-5m", title="relative time")
    age = time.time() - time.mktime(time.strptime(relative["start"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert 200 < age + time.timezone < 400  # the RFC 3339 answer is UTC
    assert client.get("/v1/annotations/999999", headers=admin).status_code == 404


def test_filters_overlap_and_order(
    client: TestClient, admin: dict[str, str], world: dict[str, str]
) -> None:
    made(client, admin, start=T0, title="global")  # tenant-wide
    made(client, admin, device="esp32-01", start="2026-03-01T12:05:00Z", title="device-wide")
    made(client, admin, device="esp32-02", start="2026-03-01T12:06:00Z", title="other device")
    made(
        client,
        admin,
        kind="alert",
        series_id=world["hum"],
        start="2026-03-01T11:00:00Z",
        end="2026-03-01T12:30:00Z",
        title="humidity band",
        severity="critical",
    )
    made(client, admin, series_id=world["temp"], start="2026-03-01T12:40:00Z", title="temp mark")

    # everything, newest start first; by start ascending
    assert listed(client, admin) == [
        "temp mark",
        "other device",
        "device-wide",
        "global",
        "humidity band",
    ]
    assert listed(client, admin, order="start")[0] == "humidity band"
    # a device alone: every annotation of the device (series-level ones included)
    assert listed(client, admin, device="esp32-01") == ["temp mark", "device-wide", "humidity band"]
    # a chart of one series of the device: that series + device-wide (+ global on demand)
    chart = {"device": "esp32-01", "series": world["temp"]}
    assert listed(client, admin, **chart) == ["temp mark", "device-wide"]
    assert listed(client, admin, **chart, include_global="true") == [
        "temp mark",
        "device-wide",
        "global",
    ]
    assert listed(client, admin, series=f"{world['temp']},{world['hum']}") == [
        "temp mark",
        "humidity band",
    ]
    assert listed(client, admin, kind="alert,anomaly") == ["humidity band"]
    # overlap with [from, to): the band started before `from` and ends inside
    window = {"from": "2026-03-01T12:10:00Z", "to": "2026-03-01T12:40:00Z"}
    assert listed(client, admin, **window) == ["humidity band"]  # the mark at `to` is out
    assert listed(client, admin, **{"from": "2026-03-01T12:40:00Z", "to": HOUR}) == ["temp mark"]
    assert (
        listed(client, admin, **{"from": "2026-03-01T12:31:00Z", "to": "2026-03-01T12:39Z"}) == []
    )
    assert listed(client, admin, **{"from": "now-1h"}) == []  # all in March
    assert listed(client, admin, to="2026-03-01T11:30:00Z") == ["humidity band"]
    # a series of nobody: nothing (not an error)
    assert listed(client, admin, series="12345") == []


def test_cursor_pages(client: TestClient, admin: dict[str, str], world: dict[str, str]) -> None:
    for minute in range(7):
        start = T0_US + (minute // 2) * MIN_US  # pairs share a start: the id breaks the tie
        made(client, admin, device="esp32-01", start=start, title=f"n{minute}")
    for order, expected in (
        ("newest", ["n6", "n5", "n4", "n3", "n2", "n1", "n0"]),
        ("start", ["n0", "n1", "n2", "n3", "n4", "n5", "n6"]),
    ):
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/annotations", params=params, headers=admin).json()
            seen += [a["title"] for a in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert (seen, pages) == (expected, 3), order
    first = client.get("/v1/annotations", params={"limit": 3}, headers=admin).json()
    wrong_order = client.get(
        "/v1/annotations",
        params={"cursor": first["next_cursor"], "order": "start"},
        headers=admin,
    )
    assert wrong_order.status_code == 400
    assert wrong_order.json()["errors"][0]["loc"] == "query.cursor"
    bad = client.get("/v1/annotations", params={"cursor": "bm9wZQ"}, headers=admin)
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]


def problem(answer: Any, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    return {e["loc"]: e["msg"] for e in body.get("errors", [])}


def test_validation_errors(
    client: TestClient, admin: dict[str, str], world: dict[str, str]
) -> None:
    assert "body.end" in problem(post(client, admin, start=HOUR, end=T0, title="x"), 422)
    errors = problem(post(client, admin, kind="bogus", severity="loud", start=T0, title=""), 422)
    assert {"body.kind", "body.severity", "body.title"} <= errors.keys()
    assert "body.start" in problem(post(client, admin, title="no start"), 422)
    assert "body.start" in problem(post(client, admin, start="yesterday-ish", title="x"), 422)
    assert "body.source" in problem(post(client, admin, start=T0, title="x", source="Bad Src"), 422)
    assert "body.colour" in problem(post(client, admin, start=T0, title="x", colour="red"), 422)
    errors = problem(post(client, admin, start=T0, title="x", device="no-such-device"), 422)
    assert errors == {"body.device": "device 'no-such-device' does not exist"}
    errors = problem(post(client, admin, start=T0, title="x", series_id="42"), 422)
    assert errors == {"body.series_id": "series 42 does not exist"}
    assert "body.series_id" in problem(post(client, admin, start=T0, title="x", series_id="x"), 422)
    mismatch = post(client, admin, start=T0, title="x", device="esp32-02", series_id=world["temp"])
    assert "belongs to device 'esp32-01'" in problem(mismatch, 422)["body.series_id"]
    not_json = client.post(
        "/v1/annotations",
        content=b"{",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert problem(not_json, 422)
    # query parameters answer 400 like every other read route
    assert "query.from" in problem(client.get("/v1/annotations?from=soon", headers=admin), 400)
    assert "query.kind" in problem(client.get("/v1/annotations?kind=memo", headers=admin), 400)
    assert "query.series" in problem(client.get("/v1/annotations?series=abc", headers=admin), 400)
    assert "query.to" in problem(
        client.get("/v1/annotations", params={"from": HOUR, "to": T0}, headers=admin), 400
    )
    assert problem(client.get("/v1/annotations?limit=0", headers=admin), 400)
    assert problem(client.get("/v1/annotations/abc", headers=admin), 400)
    assert listed(client, admin) == []  # nothing was stored by the refused requests


def test_roles_and_delete(client: TestClient, admin: dict[str, str], world: dict[str, str]) -> None:
    reader, writer, other_writer = (new_key(client, r) for r in ("read", "ingest", "ingest"))
    assert post(client, reader, start=T0, title="x").status_code == 403
    assert post(client, {}, start=T0, title="x").status_code == 401
    own = made(client, writer, device="esp32-01", start=T0, title="by writer")
    by_admin = made(client, admin, device="esp32-01", start=T0, title="by admin")
    assert own["created_by"] != by_admin["created_by"]
    assert listed(client, reader) == ["by admin", "by writer"] or listed(client, reader) == [
        "by writer",
        "by admin",
    ]
    assert client.delete(f"/v1/annotations/{own['id']}", headers=reader).status_code == 403
    refused = client.delete(f"/v1/annotations/{by_admin['id']}", headers=writer)
    assert refused.status_code == 403 and "only the annotations" in refused.json()["detail"]
    assert client.delete(f"/v1/annotations/{own['id']}", headers=other_writer).status_code == 403
    assert client.delete(f"/v1/annotations/{own['id']}", headers=writer).status_code == 204
    assert client.get(f"/v1/annotations/{own['id']}", headers=admin).status_code == 404
    assert client.delete(f"/v1/annotations/{own['id']}", headers=writer).status_code == 404
    assert client.delete(f"/v1/annotations/{by_admin['id']}", headers=admin).status_code == 204
    assert listed(client, admin) == []


def test_device_token_annotates_its_own_device(
    client: TestClient, admin: dict[str, str], world: dict[str, str]
) -> None:
    answer = client.post(
        "/v1/admin/keys", json={"role": "ingest", "device": "esp32-02"}, headers=admin
    )
    token = {"X-API-Key": answer.json()["key"]}
    mine = made(client, token, start=T0, title="rebooted")
    assert mine["device"] == "esp32-02"
    assert post(client, token, device="esp32-01", start=T0, title="x").status_code == 403


def test_tenant_isolation(client: TestClient, admin: dict[str, str], world: dict[str, str]) -> None:
    a_note = made(client, admin, series_id=world["temp"], start=T0, title="a-secret-note")
    new_tenant(client, "other")
    b = new_key(client, "admin", tenant="other")
    ingest(client, b, "b-device", "temperature")
    # A's series and device do not exist for B
    assert "body.series_id" in problem(
        post(client, b, start=T0, title="x", series_id=world["temp"]), 422
    )
    assert "body.device" in problem(post(client, b, start=T0, title="x", device="esp32-01"), 422)
    # B's lists, reads and deletes never reach A's annotation
    for params in ({}, {"device": "esp32-01"}, {"series": world["temp"]}, {"include_global": 1}):
        answer = client.get("/v1/annotations", params=params, headers=b)
        assert answer.status_code == 200 and "a-secret-note" not in answer.text
    assert client.get(f"/v1/annotations/{a_note['id']}", headers=b).status_code == 404
    assert client.delete(f"/v1/annotations/{a_note['id']}", headers=b).status_code == 404
    b_note = made(client, b, device="b-device", start=T0, title="b note")
    assert listed(client, admin) == ["a-secret-note"]
    assert listed(client, b) == ["b note"]
    assert client.get(f"/v1/annotations/{b_note['id']}", headers=admin).status_code == 404


def test_helper_for_other_features(
    client: TestClient, services: Services, admin: dict[str, str], world: dict[str, str]
) -> None:
    tenant = services.auth.tenant("default")
    anomaly = annotations_store.add_annotation(
        services.store,
        tenant.id,
        kind="anomaly",
        title="spike",
        start_us=T0_US,
        end_us=T0_US + 5 * MIN_US,
        series_id=int(world["temp"]),
        severity="critical",
        source="detector:zscore",
        meta={"score": 5.1},
    )
    assert anomaly.band and anomaly.device == "esp32-01" and anomaly.created_by is None
    answer = client.get(f"/v1/annotations/{anomaly.id}", headers=admin).json()
    assert answer["source"] == "detector:zscore" and answer["end"] == "2026-03-01T12:05:00.000000Z"
    with pytest.raises(annotations_store.InvalidAnnotation) as refused:
        annotations_store.add_annotation(
            services.store, tenant.id, kind="alert", title="x", start_us=T0_US, end_us=0
        )
    assert [e.loc for e in refused.value.errors] == ["end"]
    with services.store.reader() as cur, pytest.raises(NotFound):
        annotations_store.get(cur, tenant.id + 1, anomaly.id)


def test_migration_from_version_6(tmp_path: Path) -> None:
    """A database written at schema version 6 opens at version 7 with its data kept."""
    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for number, sql in enumerate(MIGRATIONS[:6], start=1):
        con.execute(sql)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(number)])
    con.execute(
        "INSERT INTO tenants (id, name, created_at, retention_days, max_series, "
        "max_batch_points) VALUES (nextval('tenant_ids'), 'default', now(), 30, 10, 10)"
    )
    con.execute("INSERT INTO devices VALUES (1, 'esp32-01', now(), now())")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "annotations" not in tables
    con.close()

    store = EmbeddedStore(path)
    try:
        with store.reader() as cur:
            version = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            assert version == (str(len(MIGRATIONS)),) and len(MIGRATIONS) >= 7
            assert cur.execute("SELECT name FROM tenants").fetchall() == [("default",)]
            indexes = cur.execute(
                "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'annotations'"
            ).fetchall()
            assert indexes == [("annotations_tenant_start",)]
        note = annotations_store.add_annotation(
            store, 1, kind="note", title="after upgrade", start_us=T0_US, device="esp32-01"
        )
        assert note.id >= 1
        assert store.reclaim().status == "done"  # the copy keeps the new table and index
        with store.reader() as cur:
            assert annotations_store.get(cur, 1, note.id).title == "after upgrade"
    finally:
        store.close()
    again = EmbeddedStore(path)  # reopening runs no migration twice
    try:
        with again.reader() as cur:
            assert annotations_store.get(cur, 1, note.id).device == "esp32-01"
    finally:
        again.close()


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/v1/annotations"]["post"]
    assert {"201", "400", "401", "403", "422"} <= create["responses"].keys()
    assert create["responses"]["422"]["content"]["application/problem+json"]
    listing = spec["paths"]["/v1/annotations"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"device", "series", "kind", "from", "to", "limit", "cursor", "order"} <= names
    assert "204" in spec["paths"]["/v1/annotations/{annotation_id}"]["delete"]["responses"]
    assert ADMIN_KEY not in str(spec)
