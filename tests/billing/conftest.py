"""Fixtures of the billing tests live in tests/conftest.py (other apps use them too)."""
