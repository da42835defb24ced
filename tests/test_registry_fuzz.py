"""Property-based: requests generated from the registry's own OpenAPI document, sent over
real HTTP with a valid key, never make the server fail (no 5xx), answer only statuses the
document lists, and always answer JSON."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from algorail.registry.api import BackgroundServer, open_registry, openapi_document
from algorail.registry.auth import create_key

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    registry = open_registry(f"sqlite:///{folder / 'r.db'}", state_dir=folder / "state")
    with registry.sessions() as session:
        key = create_key(session, "alice", admin=True)
    server = BackgroundServer(registry).start()
    yield server.url, {"authorization": f"Bearer {key}"}
    server.stop()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_registry_fail(case, live):
    url, headers = live
    response = case.call_and_validate(base_url=url, headers=headers, timeout=30,
                                      checks=[not_a_server_error, status_code_conformance])
    assert isinstance(response.json(), dict | list)
