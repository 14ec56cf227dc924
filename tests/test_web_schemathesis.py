"""Property-based tests of the whole API from its own OpenAPI schema (schemathesis, in-process):
whatever request schemathesis makes (valid or not), the server answers without a 5xx, and every
response (status, content type, headers, body) matches what the schema declares; routes that
need a key refuse requests without one.

Two of schemathesis's checks are left out, on purpose: "negative data rejection" (the engine
validates contexts and payloads with pydantic's lax mode, so `false` for a number field is 0,
which JSON Schema calls invalid) and "positive data acceptance" (a request valid by the schema is
still refused when the instance's state says no: a 409 is the right answer there)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the [test] extra")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance  # noqa: E402

EXCLUDED = [negative_data_rejection, positive_data_acceptance]

sys.path.insert(0, str(Path(__file__).parent))
from web_support import make_web  # noqa: E402

# One engine for the module (SQLite file in a temp dir): generated requests start instances and
# send events to them, so later requests meet existing ids as well as unknown ones.
_tmp = Path(__import__("tempfile").mkdtemp(prefix="sm-schemathesis-"))
_web_iter = make_web(f"sqlite:///{_tmp / 'schema.db'}")
WEB = next(_web_iter)
for _iid in ("A1", "A2"):
    WEB.start_order(_iid)
WEB.post("/api/instances", {"machine": "flaky", "id": "F1"})
WEB.engine.run_due()

schema = schemathesis.openapi.from_asgi("/openapi.json", WEB.client.app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_gets_a_5xx_or_an_undocumented_response(case: object) -> None:
    case.call_and_validate(headers=WEB.auth("admin"), excluded_checks=EXCLUDED)  # type: ignore[attr-defined]


def teardown_module() -> None:
    with contextlib.suppress(StopIteration):
        next(_web_iter)
