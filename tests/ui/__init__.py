"""The UI tests: a package, so their conftest does not take the name of tests/conftest.py."""
