"""schemathesis against birdhouse's own OpenAPI description (``GET /v0/openapi.json``), in-process over ASGI.

Every documented operation is fuzzed with generated requests, positive (valid per the
document) and negative (violating it), each with a real token: the workspace admin
token, or the user token for the operations that need it. Properties:

* never a 5xx (a 500 is always a bug; no 503 can be legitimate here: storage is up), except
  the 501 that /v0/events documents for an unsupported ``format``;
* for positive requests, the response conforms: its status code, Content-Type, headers
  and body are the ones the document declares for that operation.

The document is loaded from the running app (so the route that serves it is under test
too); schemathesis owns the app's lifespan (it opens chDB in the module's data dir) and
its pytest plugin ends it when each test ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CheckFunction
from schemathesis.generation.case import Case
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Route

from birdhouse.app import create_app
from birdhouse.config import load_settings
from birdhouse.http import openapi

# Examples per operation and generation mode. 37 operations x 2 modes x 6 examples
# finish in well under 90 s on a shared 2-core machine; raise for a long run with
# BIRDHOUSE_FUZZ_EXAMPLES=500 (it scales the other fuzz suites too).
EXAMPLES = max(1, int(os.environ.get("BIRDHOUSE_FUZZ_EXAMPLES", "0")) // 10) or 6



def no_server_error(ctx: Any, response: Any, case: Case) -> bool | None:
    """Like schemathesis' not_a_server_error, but a 5xx the operation documents for client input (the
    501 of an unsupported events `format`, SPEC E18) is an answer, not a server error. 500 never is."""
    status: int = response.status_code
    documented = case.operation.definition.raw.get("responses", {})
    if status >= 500 and (status == 500 or status == 503 or str(status) not in documented):
        raise AssertionError(f"{case.operation.label} answered {status}: {response.text[:500]!r}")
    return None


POSITIVE_CHECKS: list[CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# A request that violates the document may be accepted (unknown parameters are
# ignored, SPEC §1.2) or refused with any documented or router status: only 5xx
# are wrong, and the answer must still be a declared content type.
NEGATIVE_CHECKS: list[CheckFunction] = [no_server_error]

OPERATIONS = [(path, method.upper()) for path, item in openapi.OPENAPI["paths"].items() for method in item]
USER_TOKEN_TAG = "workspaces"


@schemathesis.serializer("application/x-ndjson")
def ndjson_serializer(context: Any, value: Any) -> bytes:
    """Generated NDJSON bodies are strings (or bytes); send them as they are."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@dataclass
class Api:
    app: Starlette
    schema: Any
    admin: str
    user: str


def with_openapi_route(app: Starlette) -> Starlette:
    """Register GET /v0/openapi.json if app.py does not yet."""
    if not any(isinstance(r, Route) and r.path == "/v0/openapi.json" for r in app.router.routes):
        app.router.routes.extend(openapi.routes)
    return app


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openapi") / "data"


@pytest.fixture
def api(data_dir: Path) -> Iterator[Api]:
    settings_ = load_settings(environ={}, overrides={"server.data_dir": str(data_dir)})
    app = with_openapi_route(create_app(settings_))
    schema = schemathesis.openapi.from_asgi("/v0/openapi.json", app)
    tokens = schema["/tokens"]["GET"].Case().call().json()
    try:
        yield Api(app, schema, tokens["workspace_admin_token"], tokens["user_token"])
    finally:
        # The schemathesis pytest plugin does this at teardown too; without it (-p no:schemathesis)
        # chDB would stay open and the next app in this process could not start.
        asgi.shutdown_lifespans()


def test_served_document_is_the_module_constant(api: Api) -> None:
    assert api.schema.raw_schema == openapi.OPENAPI
    served = {(path, method.upper()) for path, item in api.schema.raw_schema["paths"].items() for method in item}
    assert served == set(OPERATIONS)
    # Every route of the app is described (the router's own HEAD-for-GET aside).
    routed = {
        (route.path, method)
        for route in api.app.router.routes
        if isinstance(route, Route) and route.methods
        for method in route.methods
        if method != "HEAD"
    }
    undocumented = {
        (p, m) for p, m in routed if (p, m) not in served and not (p == "/v0/events" or p == "/v0/events/")
    }
    assert undocumented == set()


def _token_for(api: Api, case: Case) -> str:
    tags = case.operation.definition.raw.get("tags", [])
    return api.user if USER_TOKEN_TAG in tags else api.admin


def _strip_generated_auth(case: Case) -> None:
    """The run authenticates with real tokens; generated ones would only test 403 paths."""
    if case.query:
        case.query.pop("token", None)
    if case.headers:
        case.headers.pop("Authorization", None)


def _violable(definition: dict[str, Any]) -> bool:
    """Whether a request can violate the operation's definition (a required or typed parameter, or a body)."""
    for parameter in definition.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("required") or set(schema) - {"type", "description", "examples"} or schema.get("type") != "string":
            return True
    return "requestBody" in definition


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_conforms(api: Api, path: str, method: str) -> None:
    operation = api.schema[path][method]
    positive = operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)
    negative = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=positive)
    def check_positive(case: Case) -> None:
        _strip_generated_auth(case)
        response = case.call(headers={"Authorization": f"Bearer {_token_for(api, case)}"})
        seen.append(response.status_code)
        case.validate_response(response, checks=POSITIVE_CHECKS)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=negative)
    def check_negative(case: Case) -> None:
        _strip_generated_auth(case)
        response = case.call(headers={"Authorization": f"Bearer {_token_for(api, case)}"})
        seen.append(response.status_code)
        case.validate_response(response, checks=NEGATIVE_CHECKS)

    check_positive()
    try:
        check_negative()
    except Unsatisfiable:
        # Nothing to violate: no parameters or body, or only unconstrained strings.
        assert not _violable(operation.definition.raw), "negative generation failed on a constrained operation"
    assert seen, "no request was sent"
