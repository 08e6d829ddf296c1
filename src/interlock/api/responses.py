"""OpenAI's Responses API (`/v1/responses`), translated onto the same gateway as chat.

`POST /v1/responses` is a model endpoint like the others (keys, budgets, routing, ledger, audit, hooks);
its wire format translates to chat and back (`translate/responses*.py`). Interlock keeps the response
store itself: a request with `previous_response_id` gets the stored conversation prepended (so the
upstream always receives, and the budget bound always sees, the full input), and a completed response
is stored (unless `store: false`) before its last byte goes out, so a client's follow-up always finds
it. Stored responses belong to the key that made them: `GET` and `DELETE /v1/responses/{id}`,
`GET /v1/responses/{id}/input_items` and `previous_response_id` see only the caller's own.

Which upstream API serves the request is the deployment's choice, not this module's: the request goes
through the gateway as a `ResponsesChat`, which an `openai_compatible` deployment with
`responses_api = "native"` sends to the upstream's own `/v1/responses` (`translate/responses_upstream.py`)
and every other provider answers as chat. Either way the answer comes back as chat types, so the
hooks, the ledger and this wire are the same for both.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.admin import query
from interlock.api.exchange import Exchange
from interlock.api.http import JSONResponse, bearer_token, sse_frame, validate
from interlock.api.openai import authenticate, refuse
from interlock.api.state import AppState
from interlock.auth.keys import Principal
from interlock.errors import BadRequest, GatewayError, NotFound
from interlock.gateway.context import RequestContext
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.store import Store
from interlock.store.response_queries import ResponseRecord
from interlock.translate.responses import ResponsesRequest, parse_request, to_chat_request
from interlock.translate.responses_output import (
    dump_messages,
    load_messages,
    output_messages,
    skeleton,
    to_response,
    wants_summary,
)
from interlock.translate.responses_stream import Event, ResponsesStreamWriter
from interlock.translate.responses_tools import ToolNames
from interlock.translate.responses_upstream import input_items
from interlock.types import ChatChunk, ChatRequest, ChatResponse, Message

log = logging.getLogger(__name__)


def owner_of(principal: Principal) -> str | None:
    """Whose stored responses a caller sees: its key's, or the admin's; None for an anonymous caller."""
    if principal.key_id is not None:
        return principal.key_id
    return "admin" if principal.is_admin else None


MAX_ID_CHARS = 256


class InputItemsQuery(BaseModel):
    """The query of `GET /v1/responses/{id}/input_items`, as OpenAI's list endpoints take it."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100, description="how many items, 1 to 100")
    order: Literal["asc", "desc"] = Field(default="desc", description="'asc': oldest first; 'desc': newest first")
    after: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_CHARS, description="list the items after this item id"
    )


def _frame(event: Event) -> bytes:
    return sse_frame(orjson.dumps(event[1]), event=event[0])


class ResponsesWire:
    """The Responses API: a Responses object, or its event stream from `response.created` on."""

    flavor: ClassVar[str] = "openai"

    def __init__(self, ctx: RequestContext) -> None:
        self._id = "resp_" + ctx.request_id.removeprefix("req_")
        self._created = int(ctx.ts)
        self._request: ResponsesRequest | None = None
        self._messages: list[Message] = []  # what the model was sent, less the instructions
        self._writer: ResponsesStreamWriter | None = None
        self._names = ToolNames()  # the request's tools, as the chat request named them
        self.completed: dict[str, Any] | None = None  # the finished Responses object, once rendered

    @property
    def request(self) -> ResponsesRequest:
        """The parsed request."""
        assert self._request is not None
        return self._request

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """A ChatRequest translated from the Responses request (without any stored history yet)."""
        self._request = parse_request(data)
        return self.continued([])

    def continued(self, history: list[Message]) -> ChatRequest:
        """The chat request with a stored conversation before this input."""
        chat = to_chat_request(self.request, history)
        self._names = chat.names
        self._messages = chat.messages[1:] if self.request.instructions else list(chat.messages)
        return chat

    def render(self, response: ModelResponse) -> bytes:
        """The answer as a Responses object."""
        assert isinstance(response, ChatResponse)
        self.completed = to_response(response, self.request, self._id, self._created, self._names)
        return orjson.dumps(self.completed)

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        """The events for one chunk (`response.created` and `response.in_progress` before the first)."""
        events: list[Event] = []
        if self._writer is None:
            summary = wants_summary(self.request)
            self._writer = ResponsesStreamWriter(skeleton(self.request, self._id, self._created), self._names, summary)
            events = self._writer.start()
        events += self._writer.feed(chunk)
        return [_frame(e) for e in events]

    def closing(self) -> list[bytes]:
        """Closing the open item, then `response.completed` (or `response.incomplete`)."""
        if self._writer is None:
            return []
        events = self._writer.finish()
        self.completed = self._writer.response
        return [_frame(e) for e in events]

    def error_event(self, exc: GatewayError) -> bytes:
        """`response.failed`, with the error."""
        if self._writer is None:
            summary = wants_summary(self.request)
            self._writer = ResponsesStreamWriter(skeleton(self.request, self._id, self._created), self._names, summary)
        return _frame(self._writer.failed(exc))

    def record(self, owner: str, retention_s: int) -> ResponseRecord | None:
        """The stored form of the finished response, unless the client said `store: false`."""
        if self.completed is None or self._request is None or not self._request.store:
            return None
        conversation = self._messages + output_messages(self.completed["output"])
        return ResponseRecord(
            id=self._id,
            owner=owner,
            created_at=time.time(),
            expires_at=time.time() + retention_s,
            body=orjson.dumps(self.completed).decode(),
            conversation=dump_messages(conversation).decode(),
        )


async def stored_conversation(store: Store, owner: str | None, previous: str) -> list[Message]:
    """The conversation of the stored response `previous` (`previous_response_id`), the owner's own, or a 404."""
    found = await store.get_response(previous, owner, time.time()) if owner is not None else None
    if found is None:
        raise NotFound(
            f"previous response '{previous}' does not exist, has expired, or belongs to another key",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return load_messages(found.conversation)


class ResponsesExchange(Exchange):
    """The exchange of one Responses request: it loads the earlier turn first and stores this one last."""

    def __init__(self, state: AppState, ctx: RequestContext, request: Request, wire: ResponsesWire) -> None:
        super().__init__(state.gateway, ctx, request, wire, state.settings.server.max_body_bytes)
        self._responses = wire
        self._store: Store = state.store
        self._retention_s = state.settings.responses.retention_s
        self._owner = owner_of(ctx.principal)
        self._kept = False

    async def _parse(self) -> ModelRequest:
        request = await super()._parse()
        previous = self._responses.request.previous_response_id
        if previous is None:
            return request
        return self._responses.continued(await stored_conversation(self._store, self._owner, previous))

    async def _body(self, data: bytes, more: bool) -> None:
        if not more and not self._kept:
            self._kept = True
            await self._keep()
        await super()._body(data, more)

    async def _keep(self) -> None:
        """Store the finished response before its last byte goes out: a follow-up must find it."""
        if self._owner is None:
            return
        record = self._responses.record(self._owner, self._retention_s)
        if record is None:
            return
        try:
            await self._store.save_response(record)
        except Exception:  # the answer is still good; only its continuation is lost
            log.exception("storing response %s failed", record.id)


async def create_response(request: Request) -> Response:
    """POST /v1/responses."""
    state: AppState = request.app.state.interlock
    try:
        ctx = await authenticate(state, request, "responses")
    except GatewayError as exc:
        return refuse(state, request, exc)
    return ResponsesExchange(state, ctx, request, ResponsesWire(ctx))


async def _stored(request: Request) -> tuple[AppState, str, str]:
    """The state, the caller's owner id and the response id of a stored-response request."""
    state: AppState = request.app.state.interlock
    principal = await state.keys.authenticate(bearer_token(request))
    owner = owner_of(principal)
    response_id = request.path_params["response_id"]
    if owner is None or len(response_id) > MAX_ID_CHARS or "\x00" in response_id:  # never an id we made
        raise NotFound(f"response '{response_id[:MAX_ID_CHARS]}' does not exist", code="response_not_found")
    return state, owner, response_id


async def get_response(request: Request) -> Response:
    """GET /v1/responses/{response_id}: one of the caller's stored responses."""
    try:
        state, owner, response_id = await _stored(request)
        found = await state.store.get_response(response_id, owner, time.time())
        if found is None:
            raise NotFound(f"response '{response_id}' does not exist", code="response_not_found")
    except GatewayError as exc:
        return refuse(request.app.state.interlock, request, exc)
    return Response(found.body, media_type="application/json")


async def delete_response(request: Request) -> Response:
    """DELETE /v1/responses/{response_id}."""
    try:
        state, owner, response_id = await _stored(request)
        if not await state.store.delete_response(response_id, owner):
            raise NotFound(f"response '{response_id}' does not exist", code="response_not_found")
    except GatewayError as exc:
        return refuse(request.app.state.interlock, request, exc)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


def stored_input_items(response_id: str, conversation: str) -> list[dict[str, Any]]:
    """The input items of a stored response, oldest first, with ids: the whole conversation it was given.

    That is every earlier turn (`previous_response_id`) and this turn's input, as the upstream got it,
    less the `instructions` (not carried from turn to turn) and this response's own output.
    """
    suffix = response_id.removeprefix("resp_")
    prefixes = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
    items = input_items(load_messages(conversation)[:-1])
    for n, item in enumerate(items):
        item["id"] = f"{prefixes[item['type']]}_{suffix}_in{n}"
        item["status"] = "completed"
    return items


async def list_input_items(request: Request) -> Response:
    """GET /v1/responses/{response_id}/input_items: OpenAI's list shape, paged by `limit`, `order` and `after`."""
    try:
        state, owner, response_id = await _stored(request)
        params = validate(InputItemsQuery, query(request))
        found = await state.store.get_response(response_id, owner, time.time())
        if found is None:
            raise NotFound(f"response '{response_id}' does not exist", code="response_not_found")
        items = stored_input_items(response_id, found.conversation)
        if params.order == "desc":
            items.reverse()
        if params.after is not None:
            at = next((i for i, item in enumerate(items) if item["id"] == params.after), None)
            if at is None:
                raise BadRequest(
                    f"invalid 'after': no item '{params.after}' in the input of response '{response_id}'",
                    param="after",
                    code="invalid_value",
                )
            items = items[at + 1 :]
    except GatewayError as exc:
        return refuse(request.app.state.interlock, request, exc)
    page = items[: params.limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > len(page),
        }
    )
