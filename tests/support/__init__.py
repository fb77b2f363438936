"""Helpers shared by the test modules: fixtures for real servers live in tests/conftest.py,
the functions and data they share live here."""
