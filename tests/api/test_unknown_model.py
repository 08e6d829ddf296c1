"""The 404 for an unknown model: it lists only what the calling key may use, and never echoes a huge name."""

from __future__ import annotations

from starlette.testclient import TestClient

MSG = [{"role": "user", "content": "hi"}]


def _key(client: TestClient, **body: object) -> str:
    r = client.post("/admin/keys", json={"name": "app", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def _chat(client: TestClient, token: str, model: str) -> dict:  # type: ignore[type-arg]
    r = client.post(
        "/v1/chat/completions", json={"model": model, "messages": MSG}, headers={"authorization": f"Bearer {token}"}
    )
    assert r.status_code == 404, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def test_scoped_key_sees_only_its_own_aliases(client: TestClient) -> None:
    error = _chat(client, _key(client, models=["echo"]), "nope")
    assert error["message"] == "model 'nope' does not exist; available chat models: echo"
    assert "echo-remote" not in error["message"]


def test_tag_scoped_key_sees_the_tagged_aliases(client: TestClient) -> None:
    error = _chat(client, _key(client, models=["tag:local"]), "nope")
    assert error["message"].endswith("available chat models: echo")


def test_unscoped_key_sees_every_alias_of_the_mode(client: TestClient) -> None:
    error = _chat(client, _key(client), "nope")
    assert error["message"].endswith("available chat models: echo, echo-remote")


def test_key_scoped_to_other_modes_sees_none(client: TestClient) -> None:
    error = _chat(client, _key(client, models=["vectors"]), "nope")
    assert error["message"].endswith("available chat models: none")


def test_huge_model_name_is_cut_to_200_characters(client: TestClient) -> None:
    error = _chat(client, _key(client), "m" * 100_000)
    assert f"model '{'m' * 200}…' does not exist" in error["message"]
    assert len(error["message"]) < 400


def test_name_of_200_characters_is_shown_whole(client: TestClient) -> None:
    name = "n" * 200
    error = _chat(client, _key(client), name)
    assert f"model '{name}' does not exist" in error["message"] and "…" not in error["message"]
