"""The temperature/v1 device contract: its examples, its refusals, its endpoint's
semantics (device keys, idempotency, last write wins), the contract catalogue and the
temperature summary, checked against numbers computed here."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from fastapi.testclient import TestClient

from conftest import new_key

ROOT = Path(__file__).parents[3]
EXAMPLES = sorted((ROOT / "docs/contracts/examples/temperature-v1").glob("*.json"))
URL = "/v1/contracts/temperature"


def schema() -> dict[str, Any]:
    text = resources.files("stats_service").joinpath("contracts/temperature-v1.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def series_of(client: TestClient, admin: dict[str, str], device: str) -> dict[str, Any]:
    answer = client.get("/v1/series", params={"device": device}, headers=admin)
    assert answer.status_code == 200, answer.text
    return {s["metric"]: s for s in answer.json()["items"]}


def values(client: TestClient, admin: dict[str, str], sid: str) -> list[float]:
    params = {"from": "2000-01-01T00:00:00Z", "to": "now+1h", "limit": 10_000}
    answer = client.get(f"/v1/series/{sid}/points", params=params, headers=admin)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    return body


# -- examples ---------------------------------------------------------------------------------


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_and_accepted(
    path: Path, client: TestClient, admin: dict[str, str]
) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    validator().validate(body)
    answer = client.post(URL, json=body, headers=admin)
    assert answer.status_code == 202, answer.text
    readings = body.get("readings", [body])
    skip = ("ts", "schema", "device", "firmware")
    fields = sum(1 for r in readings for k, v in r.items() if k not in skip and v is not None)
    firmware = 1 if "firmware" in body else 0
    assert answer.json()["points"] == fields + firmware


def test_a_reading_is_stored_with_units_and_firmware_state(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = json.loads(
        (ROOT / "docs/contracts/examples/temperature-v1/single-reading.json").read_text()
    )
    assert client.post(URL, json=body, headers=admin).status_code == 202
    series = series_of(client, admin, "esp32-kitchen")
    units = {m: s["unit"] for m, s in series.items()}
    assert units == {
        "temperature": "°C",
        "humidity": "%",
        "pressure": "hPa",
        "battery": "V",
        "rssi": "dBm",
        "firmware": None,
    }
    assert series["temperature"]["last_value"] == 21.5
    assert series["temperature"]["tags"] == {"device": "esp32-kitchen"}
    assert series["firmware"]["last_state"] == "1.4.2"
    assert series["firmware"]["last_state_ts"] == "2026-11-20T08:15:00.000000Z"


def test_without_ts_the_server_time_is_used(client: TestClient, admin: dict[str, str]) -> None:
    before = time.time()
    body = {"schema": "temperature/v1", "device": "pico-now", "temperature": 9.5}
    assert client.post(URL, json=body, headers=admin).status_code == 202
    last = series_of(client, admin, "pico-now")["temperature"]["last_ts"]
    stamp = datetime.fromisoformat(last).timestamp()
    assert before - 1 <= stamp <= time.time() + 1


def test_schema_field_may_be_omitted_while_v1_is_the_only_version(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = {"device": "pico-plain", "ts": "2026-11-20T08:00:00Z", "temperature": 5.0}
    validator().validate(body)
    assert client.post(URL, json=body, headers=admin).status_code == 202


def test_a_null_field_counts_as_absent(client: TestClient, admin: dict[str, str]) -> None:
    body = {**GOOD, "device": "esp32-null", "ts": None, "humidity": None, "firmware": None}
    validator().validate(body)
    answer = client.post(URL, json=body, headers=admin)
    assert answer.status_code == 202, answer.text
    assert answer.json()["points"] == 1
    assert set(series_of(client, admin, "esp32-null")) == {"temperature"}


def test_precision_parameter(client: TestClient, admin: dict[str, str]) -> None:
    ts_ms = 1795420800123
    body = {"schema": "temperature/v1", "device": "esp32-ms", "ts": ts_ms, "temperature": 1.5}
    answer = client.post(URL, params={"precision": "ms"}, json=body, headers=admin)
    assert answer.status_code == 202, answer.text
    last = series_of(client, admin, "esp32-ms")["temperature"]["last_ts"]
    assert last == "2026-11-23T08:00:00.123000Z"
    body["ts"] = 20  # 20 ms after the epoch: refused as ambiguous without precision
    problem(client.post(URL, json=body, headers=admin), 400)


# -- refusals ---------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "schema": "temperature/v1",
    "device": "esp32-x",
    "ts": "2026-11-20T08:00:00Z",
    "temperature": 20.0,
}


def _with(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not None}


def _batch(*readings: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"schema": "temperature/v1", "device": "pico-x", "readings": list(readings), **top}


R = {"ts": 1795420800, "temperature": 10.0}

BAD: list[tuple[str, Any, str, str]] = [
    ("no-device", _with(device=None), "body.device", "is required"),
    ("bad-device", _with(device="-x"), "body.device", "1-128 characters"),
    ("device-not-string", _with(device=12), "body.device", "1-128 characters"),
    ("no-temperature", _with(temperature=None, humidity=40), "body.temperature", "is required"),
    ("temperature-null", {**GOOD, "temperature": None}, "body.temperature", "is required"),
    ("reading-ts-null", _batch({**R, "ts": None}), "body.readings[0].ts", "is required"),
    ("too-cold", _with(temperature=-90.5), "body.temperature", "between -90 and 150"),
    ("too-hot", _with(temperature=151), "body.temperature", "between -90 and 150"),
    ("temperature-text", _with(temperature="21.5"), "body.temperature", "must be a number"),
    ("temperature-bool", _with(temperature=True), "body.temperature", "must be a number"),
    ("humidity-high", _with(humidity=100.5), "body.humidity", "between 0 and 100"),
    ("humidity-negative", _with(humidity=-1), "body.humidity", "between 0 and 100"),
    ("pressure-low", _with(pressure=250), "body.pressure", "between 300 and 1100"),
    ("pressure-pa", _with(pressure=101325), "body.pressure", "between 300 and 1100"),
    ("battery-negative", _with(battery=-0.1), "body.battery", "between 0 and 20"),
    ("battery-percent", _with(battery=87), "body.battery", "between 0 and 20"),
    ("rssi-zero", _with(rssi=0), "body.rssi", "below 0"),
    ("rssi-positive", _with(rssi=40), "body.rssi", "below 0"),
    ("rssi-too-low", _with(rssi=-151), "body.rssi", "at least -150"),
    ("firmware-empty", _with(firmware=""), "body.firmware", "1-64 printable"),
    ("firmware-number", _with(firmware=1.4), "body.firmware", "1-64 printable"),
    ("firmware-long", _with(firmware="x" * 65), "body.firmware", "1-64 printable"),
    ("bad-ts", _with(ts="2026-13-01"), "body.ts", "RFC 3339"),
    ("future-ts", _with(ts="2099-01-01T00:00:00Z"), "body.ts", "future"),
    ("unknown-field", _with(co2=400), "body.co2", "unknown field"),
    ("readings-beside-fields", _batch(R, temperature=1.0), "body.temperature", "unknown field"),
    ("readings-empty", _batch(), "body.readings", "non-empty list"),
    ("readings-not-list", {**_batch(), "readings": {"a": 1}}, "body.readings", "non-empty"),
    ("reading-not-object", _batch(R, 5), "body.readings[1]", "must be an object"),
    ("reading-without-ts", _batch(R, {"temperature": 1.0}), "body.readings[1].ts", "required"),
    (
        "reading-humidity",
        _batch(R, R, {**R, "humidity": 101}),
        "body.readings[2].humidity",
        "must be between 0 and 100",
    ),
    ("reading-unknown", _batch({**R, "device": "y"}), "body.readings[0].device", "unknown field"),
]


@pytest.mark.parametrize(("body", "loc", "msg"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_constraint_is_refused_with_its_location(
    body: Any, loc: str, msg: str, client: TestClient, admin: dict[str, str]
) -> None:
    if loc != "body.ts":  # `format` is only an annotation in draft 2020-12; the clock is ours
        assert not validator().is_valid(body), "the JSON Schema must refuse it too"
    found = problem(client.post(URL, json=body, headers=admin), 400)
    located = {e["loc"]: e["msg"] for e in found["errors"]}
    assert loc in located, found
    assert msg in located[loc], found


def test_nan_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    text = b'{"device": "esp32-x", "temperature": NaN}'
    found = problem(client.post(URL, content=text, headers=admin), 400)
    assert any("NaN" in e["msg"] for e in found["errors"])
    problem(client.post(URL, content=b"{not json", headers=admin), 400)


def test_every_error_is_reported_and_nothing_is_stored(
    client: TestClient, admin: dict[str, str]
) -> None:
    readings = [{"ts": 1795420800 + 60 * i, "temperature": 10.0 + i} for i in range(5)]
    readings[1]["humidity"] = 140
    readings[3]["temperature"] = 400
    readings[4]["rssi"] = 3
    body = {"schema": "temperature/v1", "device": "pico-half", "readings": readings}
    found = problem(client.post(URL, json=body, headers=admin), 400)
    assert [e["loc"] for e in found["errors"]] == [
        "body.readings[1].humidity",
        "body.readings[3].temperature",
        "body.readings[4].rssi",
    ]
    assert "body.readings[1].humidity: must be between 0 and 100" in found["detail"]
    assert series_of(client, admin, "pico-half") == {}  # not one of the good readings


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("temperature/v2", "newer than this server"),
        ("temperature/v0", "not a temperature contract"),
        ("epidemic-run/v1", "not a temperature contract"),
        ("temperature", "not a temperature contract"),
        (3, "not a temperature contract"),
    ],
)
def test_unknown_or_newer_versions_name_the_supported_ones(
    value: Any, hint: str, client: TestClient, admin: dict[str, str]
) -> None:
    body = {**GOOD, "schema": value, "device": "esp32-v2"}
    found = problem(client.post(URL, json=body, headers=admin), 422)
    assert found["errors"][0]["loc"] == "body.schema"
    assert hint in found["detail"] and "supported: temperature/v1" in found["detail"]
    assert series_of(client, admin, "esp32-v2") == {}
    assert not validator().is_valid(body)


def test_a_list_body_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    problem(client.post(URL, json=[GOOD], headers=admin), 422)


# -- keys, idempotency, last write wins -------------------------------------------------------


def test_a_device_key_writes_only_its_own_device(client: TestClient, admin: dict[str, str]) -> None:
    made = client.post(
        "/v1/admin/keys", json={"role": "ingest", "device": "esp32-mine"}, headers=admin
    )
    assert made.status_code == 201, made.text
    key = {"X-API-Key": made.json()["key"]}
    own = {**GOOD, "device": "esp32-mine"}
    assert client.post(URL, json=own, headers=key).status_code == 202
    found = problem(client.post(URL, json={**GOOD, "device": "esp32-theirs"}, headers=key), 403)
    assert "esp32-mine" in found["detail"]
    assert series_of(client, admin, "esp32-theirs") == {}


def test_roles(client: TestClient, admin: dict[str, str]) -> None:
    problem(client.post(URL, json=GOOD), 401)
    problem(client.post(URL, json=GOOD, headers=new_key(client, "read")), 403)
    assert client.post(URL, json=GOOD, headers=new_key(client, "ingest")).status_code == 202


def test_idempotency_key_and_last_write_wins(client: TestClient, admin: dict[str, str]) -> None:
    body = {**GOOD, "device": "esp32-retry", "temperature": 19.0}
    headers = {**admin, "Idempotency-Key": "reading-42"}
    first = client.post(URL, json=body, headers=headers)
    again = client.post(URL, json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    problem(client.post(URL, json={**body, "temperature": 1.0}, headers=headers), 409)
    sid = series_of(client, admin, "esp32-retry")["temperature"]["id"]
    assert values(client, admin, sid) == [19.0]
    newer = {**body, "temperature": 19.5}  # same device and time, no key: replaces
    assert client.post(URL, json=newer, headers=admin).status_code == 202
    assert values(client, admin, sid) == [19.5]


# -- the catalogue ----------------------------------------------------------------------------


def test_contracts_are_listed_and_served(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get("/v1/contracts", headers=admin)
    assert answer.status_code == 200, answer.text
    items = {i["name"]: i for i in answer.json()["items"]}
    assert items["temperature/v1"]["status"] == "current"
    assert items["temperature/v1"]["endpoint"] == "POST /v1/contracts/temperature"
    assert "ingest/v1" in items
    served = client.get(items["temperature/v1"]["schema_url"], headers=admin)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/schema+json")
    assert served.json() == schema()
    for missing in (
        "/v1/contracts/temperature/v9",
        "/v1/contracts/humidity/v1",
        "/v1/contracts/temperature/one",
    ):
        found = problem(client.get(missing, headers=admin), 404)
        assert "temperature/v1" in found["detail"]
    problem(client.get("/v1/contracts"), 401)


def test_a_contract_of_several_parts_is_served_as_a_bundle(
    client: TestClient, admin: dict[str, str]
) -> None:
    items = {i["name"]: i for i in client.get("/v1/contracts", headers=admin).json()["items"]}
    runs = items["epidemic-run/v1"]
    assert runs["parts"] == ["start", "steps", "finish"] and runs["status"] == "current"
    assert runs["docs"] == "docs/contracts/epidemic-run-v1.md"
    assert items["temperature/v1"]["parts"] == []
    bundle = client.get(runs["schema_url"], headers=admin).json()
    jsonschema.Draft202012Validator.check_schema(bundle)
    bundled = jsonschema.Draft202012Validator(bundle)
    examples = sorted((ROOT / "docs/contracts/examples/epidemic-run-v1").glob("*.json"))
    assert examples
    for path in examples:
        bundled.validate(json.loads(path.read_text(encoding="utf-8")))
    assert not bundled.is_valid({"schema": "epidemic-run/v1", "steps": "none"})
    start = client.get(runs["schema_url"], params={"part": "start"}, headers=admin)
    assert start.status_code == 200
    packaged = resources.files("stats_service").joinpath(
        "contracts/epidemic-run-v1-start.schema.json"
    )
    assert start.json() == json.loads(packaged.read_text(encoding="utf-8"))
    for url, part in ((runs["schema_url"], "middle"), ("/v1/contracts/temperature/v1", "start")):
        found = problem(client.get(url, params={"part": part}, headers=admin), 400)
        assert found["errors"][0]["loc"] == "query.part"


def test_openapi_describes_the_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(body)  # inlined: the schema's $defs are not in the document
    jsonschema.Draft202012Validator(body).validate(json.loads(EXAMPLES[0].read_text()))


# -- the summary ------------------------------------------------------------------------------


def _day(offset: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=offset)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_summary_matches_numbers_computed_here(client: TestClient, admin: dict[str, str]) -> None:
    # three days of readings every 3 hours for one board, temperature only for another
    start = _day(3)
    kitchen = []
    for i in range(24):
        at = start + timedelta(hours=3 * i)
        kitchen.append(
            {
                "ts": _iso(at),
                "temperature": round(15 + (i * 7) % 11 * 0.5, 2),
                "humidity": float(40 + (i * 5) % 17),
            }
        )
    body = {
        "schema": "temperature/v1",
        "device": "esp32-kitchen",
        "firmware": "2.0.1",
        "readings": kitchen,
    }
    assert client.post(URL, json=body, headers=admin).status_code == 202
    shed = [{"ts": _iso(start + timedelta(hours=5)), "temperature": -3.5}]
    body = {"schema": "temperature/v1", "device": "pico-shed", "readings": shed}
    assert client.post(URL, json=body, headers=admin).status_code == 202
    # another metric of another device, and a tagged temperature series: not in the summary
    other = {"device": "hall", "tags": {"probe": "b"}, "metrics": {"temperature": 1.0}}
    assert client.post("/v1/ingest", json=other, headers=admin).status_code == 202

    params = {"from": _iso(start), "to": _iso(start + timedelta(days=3))}
    answer = client.get("/v1/temperature/summary", params=params, headers=admin)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["from"] == _iso(start).replace("Z", ".000000Z")
    assert [d["device"] for d in out["devices"]] == ["esp32-kitchen", "pico-shed"]
    assert out["next_cursor"] is None
    board = out["devices"][0]
    temps = [r["temperature"] for r in kitchen]
    hums = [r["humidity"] for r in kitchen]
    t = board["metrics"]["temperature"]
    assert t["unit"] == "°C" and t["count"] == 24
    assert t["min"] == min(temps) and t["max"] == max(temps)
    assert t["mean"] == pytest.approx(statistics.fmean(temps))
    assert t["last"] == temps[-1] == board["last_temperature"]
    assert board["last_ts"] == t["last_ts"] == kitchen[-1]["ts"].replace("Z", ".000000Z")
    h = board["metrics"]["humidity"]
    assert (h["min"], h["max"], h["unit"]) == (min(hums), max(hums), "%")
    assert h["mean"] == pytest.approx(statistics.fmean(hums))
    assert board["firmware"] == "2.0.1"
    assert set(board["metrics"]) == {"temperature", "humidity"}
    daily = board["daily"]
    assert [d["day"] for d in daily] == [
        (start + timedelta(days=k)).date().isoformat() for k in range(3)
    ]
    for k, row in enumerate(daily):
        part = kitchen[8 * k : 8 * k + 8]
        assert row["readings"] == 8
        assert row["temperature_min"] == min(r["temperature"] for r in part)
        assert row["temperature_max"] == max(r["temperature"] for r in part)
        assert row["humidity_min"] == min(r["humidity"] for r in part)
        assert row["humidity_max"] == max(r["humidity"] for r in part)
    cold = out["devices"][1]
    assert cold["metrics"]["temperature"]["min"] == -3.5
    assert "humidity" not in cold["metrics"] and cold["firmware"] is None
    assert cold["daily"] == [
        {
            "day": start.date().isoformat(),
            "start": _iso(start),
            "readings": 1,
            "temperature_min": -3.5,
            "temperature_max": -3.5,
        }
    ]

    # a narrower range: only the second day
    params = {
        "from": _iso(start + timedelta(days=1)),
        "to": _iso(start + timedelta(days=2)),
        "device": "esp32-kitchen",
    }
    out = client.get("/v1/temperature/summary", params=params, headers=admin).json()
    assert [d["device"] for d in out["devices"]] == ["esp32-kitchen"]
    assert out["devices"][0]["metrics"]["temperature"]["count"] == 8
    assert out["devices"][0]["metrics"]["temperature"]["max"] == max(temps[8:16])


def test_summary_days_follow_tz(client: TestClient, admin: dict[str, str]) -> None:
    zone = ZoneInfo("Asia/Tokyo")  # UTC+9, no DST
    start = _day(2)
    readings = [
        {"ts": _iso(start + timedelta(hours=h)), "temperature": float(h)} for h in range(24)
    ]
    body = {"schema": "temperature/v1", "device": "esp32-tokyo", "readings": readings}
    assert client.post(URL, json=body, headers=admin).status_code == 202
    params = {"from": _iso(start), "to": _iso(start + timedelta(days=1)), "tz": "Asia/Tokyo"}
    out = client.get("/v1/temperature/summary", params=params, headers=admin).json()
    assert out["tz"] == "Asia/Tokyo"
    daily = out["devices"][0]["daily"]
    local_days: dict[str, list[float]] = {}
    for r in readings:
        moment = datetime.fromisoformat(r["ts"]).astimezone(zone)
        local_days.setdefault(moment.date().isoformat(), []).append(r["temperature"])
    assert [d["day"] for d in daily] == sorted(local_days)
    for row in daily:
        part = local_days[row["day"]]
        assert (row["readings"], row["temperature_min"], row["temperature_max"]) == (
            len(part),
            min(part),
            max(part),
        )


def test_summary_pages(client: TestClient, admin: dict[str, str]) -> None:
    for name in ("dev-a", "dev-b", "dev-c"):
        body = {**GOOD, "device": name, "ts": _iso(_day(1))}
        assert client.post(URL, json=body, headers=admin).status_code == 202
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "from": "now-3d"}
    while True:
        answer = client.get("/v1/temperature/summary", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["devices"]) <= 2
        seen += [d["device"] for d in page["devices"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["dev-a", "dev-b", "dev-c"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "now-1d", "to": "now-2d"}, "from"),
        ({"from": "now-400d"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
    ],
)
def test_summary_refuses_bad_parameters(
    params: dict[str, str], loc: str, client: TestClient, admin: dict[str, str]
) -> None:
    found = problem(client.get("/v1/temperature/summary", params=params, headers=admin), 400)
    assert loc in json.dumps(found)


def test_summary_without_devices_is_empty(client: TestClient, admin: dict[str, str]) -> None:
    out = client.get("/v1/temperature/summary", headers=admin).json()
    assert out["devices"] == [] and out["next_cursor"] is None and out["tz"] == "UTC"
