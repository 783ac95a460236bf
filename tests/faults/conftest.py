from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundles import make_tiny_bundle


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("faults-bundle") / "tiny")
