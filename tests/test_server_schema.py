"""Schemathesis against the service's OpenAPI spec: generated requests never cause a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from _server_support import SECRET, Service, make_service
from tunegate.config import parse_workflow, starter_yaml
from tunegate.records import ModelKind, ModelVersion
from tunegate.server import ServerSettings


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workflow = parse_workflow(starter_yaml())
    service = make_service(
        workflow,
        Path(tmp_path_factory.mktemp("schema")) / "s.db",
        ServerSettings(secret_key=SECRET, docs=True),
    )
    service.store.save_model_version(ModelVersion(id="zs-1", kind=ModelKind.ZERO_SHOT))
    with service.client:
        service.classify("hello there", "security incident", "vpn issue")
        yield service
    service.store.close()


@pytest.fixture(scope="module")
def api_schema(svc: Service) -> Any:
    return schemathesis.openapi.from_asgi(
        "/openapi.json", svc.app, headers={"Authorization": f"Bearer {svc.analyst}"}
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_returns_a_server_error(case: Any, svc: Service) -> None:
    for token in (svc.admin, svc.analyst):
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
        )
