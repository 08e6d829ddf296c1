"""The agents tests share the command line's environment fixture (and the Redis `prefix` of tests/conftest.py)."""

from tests.cli.conftest import env as env
