from fastapi.testclient import TestClient


def test_single_reading_is_stored_and_acknowledged(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = {"device": "esp32-kitchen", "metrics": {"temperature": {"value": 21.5, "unit": "°C"}}}
    response = client.post("/v1/ingest", json=body, headers=admin)
    assert response.status_code == 202, response.text
    assert response.json()["points"] == 1
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT s.metric, s.device, s.unit, p.value "
            "FROM points p JOIN series s ON s.id = p.series_id"
        ).fetchall()
    assert rows == [("temperature", "esp32-kitchen", "°C", 21.5)]
