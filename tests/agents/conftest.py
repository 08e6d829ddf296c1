"""The agents tests share the command line's environment fixture and a Redis key prefix per test."""

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.agents.helpers import REDIS
from tests.cli.conftest import env as env


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted after it."""
    name = f"interlock-test-{uuid.uuid4().hex[:8]}:"
    yield name
    r = redis.Redis.from_url(REDIS)
    for key in r.scan_iter(f"{name}*"):
        r.delete(key)
    r.close()
