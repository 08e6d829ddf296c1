"""Short-lived agent tokens: signed, authenticating as the agent's key, refused once expired or revoked."""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.admin.tokens import parse_ttl
from interlock.auth.tokens import KEY_FILE, TOKEN_PREFIX, TokenClaims, TokenSigner, load_signing_key
from interlock.cli.main import app as cli
from interlock.errors import BadRequest, Unauthorized
from interlock.store.records import UsageRecord
from tests.agents.helpers import admin_client
from tests.conftest import ADMIN_KEY

CLAIMS = TokenClaims("tok_1", "agt_1", "key_1", "own_1", 1000.0, 2000.0)


# --- the format --------------------------------------------------------------------------------------------


def test_a_token_round_trips_and_any_change_breaks_it() -> None:
    signer = TokenSigner(Ed25519PrivateKey.generate())
    token = signer.mint(CLAIMS)
    assert token.startswith(TOKEN_PREFIX) and signer.verify(token) == CLAIMS
    head, claims, sig = token.split(".")
    forged = json.dumps({"v": 1, "tid": "tok_1", "agt": "agt_2", "key": "key_1", "own": "own_1", "iat": 0, "exp": 9e9})
    other = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode()
    # A changed first character always changes the signature's bytes (the last one carries unused bits:
    # replacing the tail with "AA" decoded to the same signature about once in 256 runs).
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    for bad in (f"{head}.{other}.{sig}", f"{head}.{claims}.{flipped}", token + ".x", TOKEN_PREFIX + "junk"):
        with pytest.raises(Unauthorized) as err:
            signer.verify(bad)
        assert err.value.code == "invalid_agent_token"
    with pytest.raises(Unauthorized):
        TokenSigner(Ed25519PrivateKey.generate()).verify(token)  # another gateway's key


def test_the_signing_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_signing_key(tmp_path / "home")
    assert stat.S_IMODE((tmp_path / "home" / KEY_FILE).stat().st_mode) == 0o600
    token = TokenSigner(first).mint(CLAIMS)
    assert TokenSigner.at(tmp_path / "home").verify(token) == CLAIMS  # the same key, read back


def test_durations() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "15m", "1h", "2d", "0.5h")] == [90, 90, 900, 3600, 172800, 1800]
    with pytest.raises(BadRequest):
        parse_ttl("soon")


# --- through the app ---------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with admin_client(tmp_path, monkeypatch, "\n[oversight]\nmax_token_ttl_s = 7200\n") as c:
        yield c


def _agent(client: TestClient, email: str = "ann@example.com", name: str = "bot") -> dict[str, Any]:
    owner = client.post("/admin/owners", json={"name": "Ann", "email": email}).json()["id"]
    r = client.post("/admin/agents", json={"name": name, "owner_id": owner, "description": "d", "models": ["echo"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _mint(client: TestClient, agent_id: str, token: str = ADMIN_KEY, **body: Any) -> Any:
    return client.post(
        f"/admin/agents/{agent_id}/tokens", json=body or {"ttl_s": 600}, headers={"authorization": f"Bearer {token}"}
    )


def _call(client: TestClient, token: str) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {token}"},
    )


def _rows(client: TestClient) -> list[UsageRecord]:
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    client.portal.call(store.flush)
    return client.portal.call(store.usage_rows)  # type: ignore[no-any-return]


def test_a_token_authenticates_as_the_agents_key(client: TestClient) -> None:
    agent = _agent(client)
    r = _mint(client, agent["id"])
    assert r.status_code == 201, r.text
    minted = r.json()
    assert minted["agent_id"] == agent["id"] and minted["key_id"] == agent["key_id"]
    assert minted["expires_at"] - time.time() == pytest.approx(600, abs=30)
    assert _call(client, minted["token"]).status_code == 200
    (row,) = _rows(client)
    assert (row.key_id, row.agent_id, row.owner_id) == (agent["key_id"], agent["id"], agent["owner_id"])
    denied = client.post(
        "/v1/chat/completions",
        json={"model": "echo-remote", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {minted['token']}"},
    )
    assert denied.status_code == 403  # the agent's models, as with its key
    listed = client.get(f"/admin/agents/{agent['id']}/tokens").json()["data"]
    assert [t["id"] for t in listed] == [minted["id"]] and "token" not in listed[0]


def test_an_expired_token_is_a_401_that_says_so(client: TestClient) -> None:
    agent = _agent(client)
    token = _mint(client, agent["id"], ttl_s=0.000001).json()["token"]
    r = _call(client, token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_agent_token"
    assert "expired at" in r.json()["error"]["message"] and "interlock agents token" in r.json()["error"]["message"]


def test_a_revoked_token_is_refused_and_the_agents_other_tokens_are_not(client: TestClient) -> None:
    agent = _agent(client)
    one, two = _mint(client, agent["id"]).json(), _mint(client, agent["id"]).json()
    r = client.post(f"/admin/agents/{agent['id']}/tokens/{one['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked"] is True
    refused = _call(client, one["token"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_agent_token"
    assert _call(client, two["token"]).status_code == 200
    assert client.post(f"/admin/agents/{agent['id']}/tokens/{one['id']}/revoke").status_code == 400
    assert client.post(f"/admin/agents/{agent['id']}/tokens/tok_nope/revoke").status_code == 404


def test_a_revocation_by_another_process_takes_effect_at_the_key_refresh(client: TestClient) -> None:
    agent = _agent(client)
    minted = _mint(client, agent["id"]).json()
    state = client.app.state.interlock  # type: ignore[attr-defined]
    assert client.portal.call(state.store.revoke_token, minted["id"], time.time())  # as `interlock agents revoke-token`
    client.portal.call(state.keys.refresh)
    assert _call(client, minted["token"]).json()["error"]["code"] == "revoked_agent_token"


def test_a_token_stops_with_its_agent_and_its_key(client: TestClient) -> None:
    agent = _agent(client)
    token = _mint(client, agent["id"]).json()["token"]
    assert client.post(f"/admin/agents/{agent['id']}/suspend").status_code == 200
    assert _call(client, token).json()["error"]["code"] == "agent_suspended"
    assert client.post(f"/admin/agents/{agent['id']}/resume").status_code == 200
    assert client.post(f"/admin/keys/{agent['key_id']}/revoke").status_code == 200
    assert _call(client, token).status_code == 401
    assert _mint(client, agent["id"]).json()["error"]["code"] == "agent_key_missing"


def test_the_owner_or_the_admin_mints_and_nobody_else(client: TestClient) -> None:
    agent = _agent(client)
    other = _agent(client, "bob@example.com", "bobs-bot")

    def key(**body: Any) -> str:
        return str(client.post("/admin/keys", json={"name": "k", **body}).json()["key"])

    anns, bobs, gov = key(owner_id=agent["owner_id"]), key(owner_id=other["owner_id"]), key(role="governance")
    minted = _mint(client, agent["id"], anns)
    assert minted.status_code == 201, minted.text
    for outsider in (bobs, gov, agent["key"], key(), key(role="admin_read")):
        r = _mint(client, agent["id"], outsider)
        assert r.status_code == 403, r.text
    assert _call(client, minted.json()["token"]).status_code == 200
    r = client.post(
        f"/admin/agents/{agent['id']}/tokens/{minted.json()['id']}/revoke", headers={"authorization": f"Bearer {gov}"}
    )
    assert r.status_code == 200  # governance may revoke, not mint
    too_long = _mint(client, agent["id"], ttl_s=9000)
    assert too_long.status_code == 400 and "max_token_ttl_s" in too_long.json()["error"]["message"]
    assert _mint(client, "agt_nope").status_code == 404


def test_a_forged_or_foreign_token_is_a_401(client: TestClient) -> None:
    agent = _agent(client)
    foreign = TokenSigner(Ed25519PrivateKey.generate()).mint(
        TokenClaims("tok_x", agent["id"], agent["key_id"], agent["owner_id"], time.time(), time.time() + 600)
    )
    r = _call(client, foreign)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_agent_token"


# --- the command line --------------------------------------------------------------------------------------


def test_a_token_is_minted_and_revoked_from_the_command_line(env: Path) -> None:
    runner = CliRunner()
    owner = json.loads(runner.invoke(cli, ["owners", "create", "Ann", "ann@example.com"]).stdout)["id"]
    out = runner.invoke(cli, ["agents", "create", "bot", "--owner", owner, "--description", "d"]).stdout
    agent_id = next(w for w in out.replace(".", " ").split() if w.startswith("agt_"))
    minted = runner.invoke(cli, ["agents", "token", agent_id, "--ttl", "1h"])
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip().splitlines()[-1]
    claims = TokenSigner.at(Path(str(env.parent / "home"))).verify(token)
    assert claims.agent_id == agent_id and claims.expires_at - time.time() == pytest.approx(3600, abs=60)
    (listed,) = json.loads(runner.invoke(cli, ["agents", "tokens", agent_id]).stdout)
    assert listed["id"] == claims.token_id and listed["revoked_at"] is None
    revoked = runner.invoke(cli, ["agents", "revoke-token", agent_id, claims.token_id])
    assert revoked.exit_code == 0 and claims.token_id in revoked.stdout
    assert json.loads(runner.invoke(cli, ["agents", "tokens", agent_id]).stdout)[0]["revoked_at"] is not None
    bad = runner.invoke(cli, ["agents", "token", agent_id, "--ttl", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
    own_key = runner.invoke(cli, ["keys", "create", "ann-laptop", "--owner-id", owner])
    assert own_key.exit_code == 0 and "sk-il-" in own_key.stdout, own_key.output
    nobody = runner.invoke(cli, ["keys", "create", "x", "--owner-id", "own_nope"])
    assert nobody.exit_code == 1 and "no active owner" in nobody.output
