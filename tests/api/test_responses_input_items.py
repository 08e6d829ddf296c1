"""`GET /v1/responses/{id}/input_items`: OpenAI's list of a stored response's input, per key, paged."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import ResponseItem
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from tests.api.sdk import in_process_sdk

ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def _key(client: TestClient, name: str) -> str:
    r = client.post("/admin/keys", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def _conversation(client: TestClient) -> str:
    """A third turn whose input holds a message, a function call, its output and two more messages."""
    sdk = in_process_sdk(client)
    first = sdk.responses.create(model="echo", input="weather?", tools=[WEATHER], instructions="short")  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call"
    second = sdk.responses.create(
        model="echo",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    third = sdk.responses.create(model="echo", previous_response_id=second.id, input="thanks")
    return third.id


def test_the_sdk_lists_the_whole_input_oldest_first_without_instructions(client: TestClient) -> None:
    rid = _conversation(client)
    page = in_process_sdk(client).responses.input_items.list(rid, order="asc")
    items = list(page)
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message", "message"]
    assert items[0].role == "user" and items[0].content[0].text == "weather?"  # type: ignore[union-attr]
    assert items[1].name == "get_weather"  # type: ignore[union-attr]
    assert items[2].output == "sunny"  # type: ignore[union-attr]
    assert items[3].role == "assistant" and items[4].content[0].text == "thanks"  # type: ignore[union-attr]
    assert len({i.id for i in items}) == 5
    raw = client.get(f"/v1/responses/{rid}/input_items", params={"order": "asc"}).json()
    assert [ITEM.validate_python(i).id for i in raw["data"]] == [i.id for i in items]


def test_default_order_is_newest_first_and_pages_follow_after(client: TestClient) -> None:
    rid = _conversation(client)
    body = client.get(f"/v1/responses/{rid}/input_items").json()
    assert body["object"] == "list" and body["has_more"] is False and len(body["data"]) == 5
    assert body["data"][0]["type"] == "message" and body["data"][0]["content"][0]["text"] == "thanks"
    assert (body["first_id"], body["last_id"]) == (body["data"][0]["id"], body["data"][-1]["id"])
    ids = [i["id"] for i in body["data"]]
    first = client.get(f"/v1/responses/{rid}/input_items", params={"limit": 2}).json()
    assert [i["id"] for i in first["data"]] == ids[:2] and first["has_more"] is True
    rest = client.get(f"/v1/responses/{rid}/input_items", params={"limit": 2, "after": first["last_id"]}).json()
    assert [i["id"] for i in rest["data"]] == ids[2:4] and rest["has_more"] is True
    last = client.get(f"/v1/responses/{rid}/input_items", params={"limit": 2, "after": rest["last_id"]}).json()
    assert [i["id"] for i in last["data"]] == ids[4:] and last["has_more"] is False
    # the SDK's auto-pagination walks the same pages
    paged = in_process_sdk(client).responses.input_items.list(rid, limit=2)
    assert [i.id for i in paged] == ids


def test_input_items_belong_to_their_key(client: TestClient) -> None:
    alice, bob = _key(client, "alice"), _key(client, "bob")
    rid = in_process_sdk(client, alice).responses.create(model="echo", input="mine").id
    url = f"/v1/responses/{rid}/input_items"
    assert client.get(url, headers={"authorization": f"Bearer {alice}"}).status_code == 200
    assert client.get(url, headers={"authorization": f"Bearer {bob}"}).status_code == 404
    assert client.get(url).status_code == 404  # the admin key is another owner
    assert client.get(url, headers={"authorization": "Bearer sk-il-nope"}).status_code == 401
    assert client.get("/v1/responses/resp_nope/input_items").status_code == 404


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "9" * 40}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"order": "\u0000"}, "order"),
        ({"after": "x" * 300}, "after"),
        ({"after": "msg_unknown"}, "after"),
        ({"before": "x"}, "before"),
    ],
)
def test_bad_query_values_are_400_naming_the_parameter(client: TestClient, params: dict[str, str], param: str) -> None:
    rid = in_process_sdk(client).responses.create(model="echo", input="hi").id
    r = client.get(f"/v1/responses/{rid}/input_items", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/responses/" + "r" * 60_000 + "/input_items",
        "/v1/responses/%00/input_items",
        "/v1/responses/%F0%9F%92%A9%E2%80%AE/input_items",
        "/v1/responses/resp_x/input_items?limit=%FF%FE&order[]=asc&after=",
        "/v1/responses/resp_x/input_items?" + "&".join(f"k{i}=v" for i in range(200)),
    ],
)
def test_hostile_requests_are_4xx(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json()
