"""Fixtures for the service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def module_client(module_migrated_url: str) -> Iterator[TestClient]:
    """The app on the module's shared database (no lost-trial reaper)."""
    app = create_app(Settings(database_url=module_migrated_url), recover=False)
    with TestClient(app) as c:
        yield c
