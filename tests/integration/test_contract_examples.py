"""Every example in docs/contracts validates against the schema and is accepted."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

EXAMPLES = sorted((Path(__file__).parents[2] / "docs/contracts/examples/ingest-v1").glob("*.json"))


def schema() -> dict[str, object]:
    text = resources.files("stats_service").joinpath("contracts/ingest-v1.schema.json")
    return json.loads(text.read_text())  # type: ignore[no-any-return]


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_and_accepted(
    path: Path, client: TestClient, admin: dict[str, str]
) -> None:
    body = json.loads(path.read_text())
    jsonschema.Draft202012Validator(schema()).validate(body)
    response = client.post("/v1/ingest", json=body, headers=admin)
    assert response.status_code == 202, response.text


def test_schema_refuses_what_the_service_refuses(client: TestClient, admin: dict[str, str]) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    bad = [
        {"device": "x", "metrics": {}},
        {"device": "x", "metrics": {"t": 1}, "points": [{"values": {"t": 1}}]},
        {"device": "", "metrics": {"t": 1}},
        {"device": "x", "tags": {"device": "y"}, "metrics": {"t": 1}},
        {"device": "x", "metrics": {"t": "warm"}},
        [],
    ]
    for body in bad:
        assert not validator.is_valid(body), body
        assert client.post("/v1/ingest", json=body, headers=admin).status_code == 400, body
