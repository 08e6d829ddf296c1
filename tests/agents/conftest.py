"""The agents tests share the command line's environment fixture."""

from tests.cli.conftest import env as env
