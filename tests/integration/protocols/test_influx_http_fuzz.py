"""Whatever a client sends to the InfluxDB endpoints, the answer is never a 500."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app

PATHS = ("/write", "/api/v2/write", "/query", "/api/v2/query")
PARAM_NAMES = ("db", "bucket", "org", "precision", "q", "p", "u", "rp", "verbose")
text = st.text(max_size=40)
requests = st.fixed_dictionaries(
    {
        "path": st.sampled_from(PATHS),
        "params": st.dictionaries(st.sampled_from(PARAM_NAMES), text, max_size=4),
        "body": st.one_of(
            st.binary(max_size=200),
            st.lists(text, max_size=5).map(lambda lines: "\n".join(lines).encode()),
        ),
        "auth": st.sampled_from(
            [{}, {"Authorization": f"Token {ADMIN_KEY}"}, {"Authorization": "Basic cm9vdDpyb290"}]
        ),
        "encoding": st.sampled_from([None, "gzip", "identity", "deflate"]),
        "content_type": st.sampled_from(
            [None, "application/json", "application/x-www-form-urlencoded", "application/vnd.flux"]
        ),
    }
)


def test_no_request_gets_a_500(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(requests)
        def check(request: dict[str, object]) -> None:
            headers = dict(request["auth"])  # type: ignore[call-overload]
            if request["encoding"]:
                headers["Content-Encoding"] = str(request["encoding"])
            if request["content_type"]:
                headers["Content-Type"] = str(request["content_type"])
            answer = client.post(
                str(request["path"]),
                params=request["params"],  # type: ignore[arg-type]
                headers=headers,
                content=request["body"],  # type: ignore[arg-type]
            )
            assert answer.status_code < 500, (request, answer.text)
            if answer.status_code >= 400:
                assert answer.headers["content-type"] == "application/json"

        check()
