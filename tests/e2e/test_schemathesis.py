"""Property-based checks of the live server against its own OpenAPI document.

Schemathesis reads `/openapi.json` from the running server, generates requests for every
operation (valid ones, then invalid ones), sends them with the admin key and fails on any
5xx and on any answer the document does not describe (status, content type, body).

The cases are driven through Hypothesis directly: schemathesis' lazy pytest loader
(`schemathesis.pytest.from_fixture`) does not run under pytest 9.

"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .harness import ADMIN, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=25,
    derandomize=True,  # the same cases on every run
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
Doc = dict[str, Any]


# -- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("schemathesis") / "data").start()
    now = int(time.time())
    with server.client() as client:  # some data, so that the read endpoints answer rows
        for device in ("seed-a", "seed-b"):
            points = [
                {"ts": now - 60 * i, "values": {"temperature": 20 + i, "humidity": 40 - i}}
                for i in range(50)
            ]
            body = {"device": device, "tags": {"site": "lab"}, "points": points}
            assert client.post("/v1/ingest", json=body).status_code == 202
    yield server
    server.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_openapi(live_server: ServerProcess, mode: GenerationMode) -> None:
    doc: Doc = httpx.get(f"{live_server.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)

    failures: list[str] = []
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # an invalid operation definition fails here
            operations += 1

            @given(case=operation.as_strategy(generation_mode=mode))
            @EXAMPLES
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=live_server.url,
                    headers=ADMIN,
                    checks=CHECKS,
                    session=session,
                    timeout=30,
                )

            try:
                check()
            except Unsatisfiable:  # nothing of this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                if not isinstance(exc, Exception | BaseExceptionGroup):
                    raise
                failures.append(f"{operation.label}:\n{str(exc)[:4000]}")
    assert operations >= 11
    assert not failures, "\n\n".join(failures)
