"""The app fixtures live in tests/apps.py (shared by every test package)."""

from tests.apps import Local, start_local

__all__ = ["Local", "start_local"]
