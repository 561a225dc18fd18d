"""Schemathesis over the app's own OpenAPI schema (fixed seed, bounded examples): no
server errors, every status code documented, every response conforming to its schema.

Not checked: that every schema-valid request is accepted. A spec's cross-field rules
(split fractions summing to 1, knob names and bounds in ``search.space``, grid ranges
needing ``points``) cannot be written in JSON Schema; they answer 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import UnsupportedSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings

EXAMPLES = 40  # per operation and mode: a fixed, bounded number of cases
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    from service.runner import upgrade_db
    from tests.conftest import _forget

    url = f"sqlite:///{Path(tmp_path_factory.mktemp('schema')) / 'hps.db'}"
    upgrade_db(url)
    yield create_app(Settings(database_url=url), recover=False)
    _forget(url)


@pytest.fixture(scope="module")
def api_schema(api_app: FastAPI) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(
    api_schema: schemathesis.schemas.BaseSchema, mode: GenerationMode
) -> None:
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # no inputs (GET /health): nothing negative to send
            assert mode == GenerationMode.NEGATIVE
        except UnsupportedSchema as exc:
            # Schemathesis cannot negate the search.space union (a `not` over a $ref'd
            # anyOf); whether a seeded run draws that mutation depends on the rest of the
            # schema. Only that reason, only in negative mode, only for submissions.
            assert mode == GenerationMode.NEGATIVE and operation.path == "/api/v1/studies"
            assert "`not` whose complement is not spelled out" in str(exc)
