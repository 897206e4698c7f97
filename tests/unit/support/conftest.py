"""Every support test starts and ends with an empty in-memory index cache (indexes are read from disk again)."""

from __future__ import annotations

import pytest

from llmcustoms.support.index import clear_cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()
