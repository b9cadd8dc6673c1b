"""Fixtures of the end-to-end suite (the harness lives in ``harness.py``)."""

import pytest
from harness import operated

__all__ = ["operated"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with ``RUN_LAST = True`` run after the rest (they read what the suite did)."""
    items.sort(key=lambda item: bool(getattr(item.module, "RUN_LAST", False)))
