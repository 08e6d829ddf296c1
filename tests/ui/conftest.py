"""The dashboard's fixtures: the app in-process with a signed-in browser-like client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import Settings
from tests.conftest import ADMIN_KEY

BASE = "http://127.0.0.1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page carries."""
    found = CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The gateway in-process, not signed in (no Authorization header: the dashboard uses its cookie)."""
    with TestClient(create_app(settings), base_url=BASE) as c:
        yield c


@pytest.fixture
def sign_in(app_client: TestClient) -> Callable[[str], str]:
    """Sign `app_client` in with a key; returns the session's CSRF token."""

    def run(key: str) -> str:
        r = app_client.post("/ui/signin", data={"key": key}, follow_redirects=False)
        assert r.status_code == 303, r.text
        return csrf_of(app_client.get("/ui/keys").text)

    return run


@pytest.fixture
def new_key(app_client: TestClient) -> Callable[..., tuple[str, str]]:
    """Create a key through the admin API; returns (id, token)."""

    def run(name: str = "k", **fields: object) -> tuple[str, str]:
        r = app_client.post(
            "/admin/keys", json={"name": name, **fields}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"]), str(r.json()["key"])

    return run
