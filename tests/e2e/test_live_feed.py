"""WS /v1/live against a real `stats-service serve` process, with the `websockets` client.

Points posted through /v1/ingest arrive as `points` messages; selections, tenant scoping,
the three ways to give a key, refusals with their close codes, keepalive pings, and a
slow consumer that is dropped (4008) while ingest and the other subscribers go on.

"Does not arrive" is checked without waiting on a clock: after the points that must not
arrive, a marker point that every subscriber selects is posted; messages come in commit
order, so anything that were to arrive would come before the marker.

WebSocket routes are not in the OpenAPI document, so the tenant isolation suite (which
walks it) does not reach this one: `test_tenant_isolation` below is its isolation test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import ServerFactory
from .harness import ADMIN, ADMIN_KEY, ServerProcess

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `serve` process for the tests of this module (each uses its own devices)."""
    process = ServerProcess(tmp_path_factory.mktemp("live") / "data")
    try:
        yield process.start()
    finally:
        process.close()


WAIT_S = 15.0  # generous: a loaded machine; arrival, not speed, is what is checked
MARKER_DEVICE = "marker"


def ws_url(server: ServerProcess, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/v1/live" + (f"?{query}" if query else "")


_opened: list[ClientConnection] = []


async def open_ws(url: str, **kwargs: Any) -> ClientConnection:
    """A client connection, closed by `run` whatever happens."""
    ws = await connect(url, **kwargs)
    _opened.append(ws)
    return ws


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        try:
            await asyncio.wait_for(main(), 120)  # type: ignore[arg-type]
        finally:
            while _opened:
                await _opened.pop().close()

    asyncio.run(guarded())


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next message other than a keepalive ping."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if message["type"] != "ping":
            return dict(message)


async def until_marker(ws: ClientConnection, marker: str = MARKER_DEVICE) -> list[dict[str, Any]]:
    """Every points message before the marker device's."""
    got = []
    while True:
        message = await recv(ws)
        if message.get("device") == marker:
            return got
        got.append(message)


async def subscribe(server: ServerProcess, query: str, key: str = ADMIN_KEY) -> ClientConnection:
    ws = await open_ws(ws_url(server, f"key={key}&{query}" if query else f"key={key}"))
    hello = await recv(ws)
    assert hello["type"] == "hello", hello
    return ws


async def post(server: ServerProcess, body: Any, key: str = ADMIN_KEY, **params: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        answer = await client.post(
            "/v1/ingest", json=body, params=params, headers={"X-API-Key": key}
        )
    assert answer.status_code == 202, answer.text


async def marker(server: ServerProcess, key: str = ADMIN_KEY) -> None:
    """The marker point: device `marker`, metric temperature, run r9."""
    await post(
        server,
        {"device": MARKER_DEVICE, "tags": {"run": "r9"}, "metrics": {"temperature": 0.0}},
        key,
    )


async def refused(url: str, first: str | None = None) -> tuple[dict[str, Any], int, str]:
    """Connect, optionally send `first`, and return the error message and close code."""
    async with connect(url) as ws:
        if first is not None:
            await ws.send(first)
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)
        assert ws.close_code is not None
        return error, ws.close_code, ws.close_reason or ""


def new_key(server: ServerProcess, role: str, tenant: str = "default") -> str:
    with server.client() as client:
        answer = client.post("/v1/admin/keys", json={"tenant": tenant, "role": role})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


# -- delivery --------------------------------------------------------------------------


def test_posted_points_arrive_with_their_values(server: ServerProcess) -> None:
    async def main() -> None:
        ws = await open_ws(ws_url(server, f"key={ADMIN_KEY}&device=esp32-live"))
        hello = await recv(ws)
        assert hello["type"] == "hello"
        assert hello["tenant"] == "default" and hello["role"] == "admin"
        assert hello["selection"]["device"] == ["esp32-live"]
        reading = {
            "device": "esp32-live",
            "ts": "2026-11-20T08:15:00.250Z",
            "tags": {"room": "lab"},
            "metrics": {"temperature": {"value": 21.5, "unit": "°C"}, "humidity": 48.25},
        }
        await post(server, reading)
        got = {m["metric"]: m for m in [await recv(ws), await recv(ws)]}
        assert set(got) == {"temperature", "humidity"}
        temperature = got["temperature"]
        assert temperature["type"] == "points"
        assert temperature["device"] == "esp32-live"
        assert temperature["tags"] == {"device": "esp32-live", "room": "lab"}
        assert temperature["unit"] == "°C"
        assert temperature["t"] == ["2026-11-20T08:15:00.250000Z"]
        assert temperature["v"] == [21.5]
        assert got["humidity"]["v"] == [48.25]
        # the series id is the one the read API knows
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            series = (await client.get("/v1/series", params={"device": "esp32-live"})).json()
        ids = {s["metric"]: s["id"] for s in series["items"]}
        assert temperature["series"] == ids["temperature"]
        # a buffered batch arrives as one message per series, in time order
        points = [{"ts": 1795420800 + i, "values": {"temperature": float(i)}} for i in range(5)]
        await post(server, {"device": "esp32-live", "points": points[::-1]}, precision="s")
        batch = await recv(ws)
        assert batch["v"] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert batch["t"][0] == "2026-11-23T08:00:00.000000Z"
        await ws.close()

    run(main)


def test_selection_by_device_metric_run_and_series(server: ServerProcess) -> None:
    async def main() -> None:
        readings = [
            {"device": "esp-a", "metrics": {"temperature": 1.0, "humidity": 2.0}},
            {"device": "esp-b", "metrics": {"temperature": 3.0}},
            {"device": "pico-c", "tags": {"run": "r1"}, "metrics": {"infected": 4.0}},
            {"device": "pico-c", "tags": {"run": "r2"}, "metrics": {"infected": 5.0}},
        ]
        await post(server, readings)  # the series exist: their ids are known
        await marker(server)
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            items = (await client.get("/v1/series", params={"device": "esp-a"})).json()["items"]
            (mark,) = (await client.get("/v1/series", params={"device": "marker"})).json()["items"]
        humidity_id = next(s["id"] for s in items if s["metric"] == "humidity")
        # each selection also selects the marker (device `marker`, temperature, run r9)
        selections = {
            "device=esp-a,marker": {("esp-a", "temperature"), ("esp-a", "humidity")},
            "device=esp-*,pico-z,marker": {
                ("esp-a", "temperature"),
                ("esp-a", "humidity"),
                ("esp-b", "temperature"),
            },
            "metric=temperature": {("esp-a", "temperature"), ("esp-b", "temperature")},
            "metric=temp*&device=esp-b,mark?r": {("esp-b", "temperature")},
            "run=r2,r9": {("pico-c", "infected")},
            "tag.run=r1,r9&metric=infected,temperature": {("pico-c", "infected")},
            f"series={humidity_id},{mark['id']}": {("esp-a", "humidity")},
        }
        subscribers = {q: await subscribe(server, q) for q in selections}
        await post(server, readings)
        await marker(server)
        for query, expected in selections.items():
            ws = subscribers[query]
            got = await until_marker(ws)
            assert {(m["device"], m["metric"]) for m in got} == expected, query
            if query.startswith("run="):
                assert got[0]["tags"] == {"device": "pico-c", "run": "r2"}
                assert got[0]["v"] == [5.0]
            await ws.close()

    run(main)


def test_tenant_isolation(server: ServerProcess) -> None:
    """A key of tenant B never receives tenant A's points, whatever it selects."""
    with server.client() as client:
        assert client.post("/v1/admin/tenants", json={"name": "tenant-b"}).status_code == 201
    b_read = new_key(server, "read", "tenant-b")
    b_admin = new_key(server, "admin", "tenant-b")

    async def series_id(device: str, key: str) -> str:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as c:
            (found,) = (await c.get("/v1/series", params={"device": device})).json()["items"]
        return str(found["id"])

    async def main() -> None:
        await post(server, {"device": "a-secret", "metrics": {"temperature": 1.0}})
        await marker(server, b_admin)
        a_id, b_marker_id = (
            await series_id("a-secret", ADMIN_KEY),
            await series_id("marker", b_admin),
        )
        a_watch = await subscribe(server, "device=a-secret")
        b_subscribers = [
            await subscribe(server, "", b_read),
            await subscribe(server, "device=a-secret,marker", b_admin),
            await subscribe(server, "metric=temperature", b_read),
            await subscribe(server, "device=a-*,mark*", b_read),
            await subscribe(server, f"series={a_id},{b_marker_id}", b_read),
        ]
        await post(server, {"device": "a-secret", "metrics": {"temperature": 2.0}})
        a_got = await recv(a_watch)
        assert (a_got["device"], a_got["v"]) == ("a-secret", [2.0])
        await marker(server, b_admin)  # after A's point: anything of A would come first
        for ws in b_subscribers:
            assert await until_marker(ws) == []
        for ws in [a_watch, *b_subscribers]:
            await ws.close()

    run(main)


# -- authentication and refusals ------------------------------------------------------


def test_key_by_header_and_by_first_message(server: ServerProcess) -> None:
    async def main() -> None:
        by_header = await open_ws(
            ws_url(server, "device=auth-dev"), additional_headers={"X-API-Key": ADMIN_KEY}
        )
        by_bearer = await open_ws(
            ws_url(server, "device=auth-dev"),
            additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        by_message = await open_ws(ws_url(server, "device=auth-dev"))
        await by_message.send(json.dumps({"type": "auth", "key": ADMIN_KEY}))
        for ws in (by_header, by_bearer, by_message):
            assert (await recv(ws))["type"] == "hello"
        await post(server, {"device": "auth-dev", "metrics": {"x": 1.0}})
        for ws in (by_header, by_bearer, by_message):
            assert (await recv(ws))["v"] == [1.0]
            await ws.close()

    run(main)


def test_a_read_key_may_subscribe(server: ServerProcess) -> None:
    reader = new_key(server, "read")

    async def main() -> None:
        ws = await open_ws(ws_url(server, f"key={reader}&device=read-dev"))
        hello = await recv(ws)
        assert hello["role"] == "read"
        await post(server, {"device": "read-dev", "metrics": {"x": 2.0}})
        assert (await recv(ws))["v"] == [2.0]
        await ws.close()

    run(main)


def test_refusals_carry_a_message_and_a_close_code(server: ServerProcess) -> None:
    ingest_key = new_key(server, "ingest")
    before = server.metric("stats_live_refused_total")

    async def main() -> None:
        error, code, reason = await refused(ws_url(server, "key=not-a-key"))
        assert code == 4401
        assert error == {
            "type": "error",
            "status": 401,
            "title": "Unauthorized",
            "detail": "unknown API key",
        }
        assert reason == "unknown API key"

        error, code, _ = await refused(ws_url(server), json.dumps({"type": "auth"}))
        assert code == 4401 and "API key is required" in error["detail"]

        error, code, _ = await refused(ws_url(server), json.dumps({"type": "auth", "key": "wrong"}))
        assert code == 4401

        error, code, _ = await refused(ws_url(server), "hello?")
        assert code == 4400 and '"type": "auth"' in error["detail"]

        error, code, _ = await refused(ws_url(server, f"key={ingest_key}"))
        assert code == 4403 and error["status"] == 403 and "'read'" in error["detail"]

        error, code, reason = await refused(ws_url(server, f"key={ADMIN_KEY}&devices=x"))
        assert code == 4400
        assert error["errors"] == [
            {
                "loc": "query.devices",
                "msg": "unknown parameter; valid are key, device, metric, run, series, "
                "keepalive and tag.<key>",
            }
        ]
        assert reason.startswith("devices: unknown parameter")

        error, code, _ = await refused(ws_url(server, f"key={ADMIN_KEY}&series=abc"))
        assert code == 4400 and error["errors"][0]["loc"] == "query.series"

        error, code, _ = await refused(ws_url(server, f"key={ADMIN_KEY}&keepalive=0"))
        assert code == 4400 and error["errors"][0]["loc"] == "query.keepalive"

    run(main)
    assert server.metric("stats_live_refused_total") == before + 8


def test_a_revoked_key_is_closed_4401(server: ServerProcess) -> None:
    with server.client() as client:
        created = client.post("/v1/admin/keys", json={"role": "read"}).json()

    async def main() -> None:
        ws = await subscribe(server, "device=revoked-dev", created["key"])
        with server.client() as client:
            assert client.delete(f"/v1/admin/keys/{created['id']}").status_code in (200, 204)
        error = await recv(ws)  # the key is checked again every few seconds
        assert error["type"] == "error" and error["status"] == 401
        assert "revoked" in error["detail"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT_S)
        assert ws.close_code == 4401

    run(main)


def test_keepalive_pings(server: ServerProcess) -> None:
    async def main() -> None:
        ws = await open_ws(ws_url(server, f"key={ADMIN_KEY}&keepalive=1&device=quiet"))
        assert json.loads(await ws.recv())["type"] == "hello"
        ping = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        assert ping["type"] == "ping" and ping["time"].endswith("Z")
        await ws.close()

    run(main)


# -- slow consumers -----------------------------------------------------------------------


def test_a_slow_consumer_is_dropped_while_ingest_and_others_go_on(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(env={"STATS_LIVE_QUEUE_BYTES": str(1024 * 1024)}).start()
    posted = 0

    async def main() -> None:
        nonlocal posted
        # the slow one: a tiny receive buffer, reads nothing until told, no compression
        # (compressed JSON would take ten times longer to fill the buffers between us)
        host, port = server.url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        slow = await open_ws(
            ws_url(server, f"key={ADMIN_KEY}&device=flood"),
            sock=sock,
            max_queue=1,
            compression=None,
        )
        assert (await recv(slow))["type"] == "hello"
        fast = await subscribe(server, "device=flood")
        received = 0

        async def read_fast() -> None:
            nonlocal received
            while True:
                message = await recv(fast)
                received += len(message["v"])

        reader = asyncio.create_task(read_fast())
        start_ms = int(time.time() * 1000) - 3_600_000
        dropped = 0.0
        for i in range(400):  # bounded; a few MB of JSON fill the socket buffers
            points = [
                {"ts": start_ms + i * 5000 + j, "values": {"v": float(j)}} for j in range(5000)
            ]
            await post(server, {"device": "flood", "points": points}, precision="ms")
            posted += len(points)
            dropped = await asyncio.to_thread(server.metric, "stats_live_dropped_subscribers_total")
            if dropped:
                break
        assert dropped == 1, "the slow subscriber was never dropped"
        # ingest goes on, and so does the fast subscriber: it gets every point
        for i in range(3):
            points = [{"ts": start_ms - 10_000 + i, "values": {"v": -1.0}}]
            await post(server, {"device": "flood", "points": points}, precision="ms")
            posted += 1
        while received < posted:
            await asyncio.sleep(0.05)
        assert received == posted
        reader.cancel()
        # the slow one reads now: what was sent before the drop, then the close code
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(slow.recv(), WAIT_S)
        assert slow.close_code == 4008
        assert (slow.close_reason or "").startswith("too slow")
        await fast.close()

    run(main)
    deadline = time.monotonic() + WAIT_S  # the server notices the closes on its own time
    while server.metric("stats_live_subscribers") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.metric("stats_live_subscribers") == 0
    assert server.metric("stats_live_messages_sent_total") > 0
