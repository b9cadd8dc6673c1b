"""Fixtures of the end-to-end suite (the harness lives in ``harness.py``)."""

from harness import operated

__all__ = ["operated"]
