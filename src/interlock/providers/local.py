"""The `local` provider: chat with the embedded llama.cpp engine, embeddings with the bundled encoder.

This module translates OpenAI-shaped requests into what the engine runs (a prompt rendered with the
model's own chat template, sampling parameters, an output grammar) and the engine's text back into
chat completions, streamed chunks and tool calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlock.engines.gguf import GgufError, context_length
from interlock.engines.llamacpp import grammar
from interlock.engines.llamacpp.engine import ChatEngine
from interlock.engines.llamacpp.generation import Generation
from interlock.engines.llamacpp.model import default_model_path
from interlock.engines.llamacpp.sampling import SamplingParams
from interlock.engines.llamacpp.slots import Finish
from interlock.engines.llamacpp.template import ChatTemplate, TemplateRenderError
from interlock.engines.weights import Weights, served_file, sha256_of
from interlock.errors import BadRequest, Unavailable
from interlock.plugins import Plugin, PluginOptions, ProviderFactory
from interlock.providers.base import Provider, ProviderContext
from interlock.providers.local_prompt import prompt_tokens
from interlock.providers.local_request import (
    ToolMode,
    logit_bias_of,
    min_p_of,
    parallel_calls,
    refuse_unsupported,
    tool_choice,
    top_k_of,
)
from interlock.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    FunctionCall,
    ImagePart,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from interlock.types.tenancy import CACHE_PARTITION

if TYPE_CHECKING:
    from interlock.settings import EngineSettings, ModelSettings


class Options(PluginOptions):
    """`local`: the model file; the engine's capacity is shared by all local models (`[engine]`)."""

    path: str | None = None  # a GGUF file (chat) or a sentence-transformers folder (embeddings); default: packaged
    # The packaged chat model as shipped (Q4_1) or requantised to Q8_0 (cached; see engines/weights.py). A `path`
    # is served as it is.
    weights: Weights = "q8_0"
    lora: str | None = None  # a GGUF LoRA adapter on top of `path` (what `interlock tune` writes); chat only
    lora_scale: float = 1.0


def create(alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None) -> Provider:
    """A chat provider on the embedded engine, or the local embedding provider (options from `model` if not given)."""
    options = options or model.plugin_options(Options)
    if model.mode == "embedding":
        from interlock.providers.local_embeddings import LocalEmbeddingProvider

        return LocalEmbeddingProvider(alias, model, context, options.path)
    if model.context_window is None:
        model = model.model_copy(update={"context_window": _context_window(options.path, context.settings.engine)})
    return LocalChatProvider(alias, model, context.settings.engine, options)


def _context_window(path: str | None, engine: EngineSettings) -> int | None:
    """What one request may hold: the context the GGUF was trained for, capped by the engine's slot size.

    None when the file cannot be read here: loading it at startup then says why.
    """
    try:
        trained = context_length(Path(path).expanduser() if path else default_model_path())
    except (OSError, GgufError):
        return None
    return min(trained, engine.n_ctx_per_slot) if trained else None


PLUGIN: Plugin[ProviderFactory] = Plugin("local", Options, create)
"""Published as the `local` entry point of `interlock.providers`."""


@dataclass(frozen=True)
class _Plan:
    """What the engine runs for one request, and how to read its output."""

    prompt: list[int]
    params: SamplingParams
    tool_mode: ToolMode


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _message_dict(message: Message) -> dict[str, Any]:
    if isinstance(message.content, list) and any(isinstance(p, ImagePart) for p in message.content):
        raise BadRequest("the local model does not accept images", code="invalid_value", param="messages")
    role = "system" if message.role == "developer" else message.role
    content = message.text()
    if message.tool_calls:
        # Past calls are shown in the same format the model is taught to answer with.
        calls = [
            f'{{"name": "{c.function.name}", "arguments": {c.function.arguments or "{}"}}}' for c in message.tool_calls
        ]
        content = "\n".join([content, *calls]) if content else "\n".join(calls)
    return {"role": role, "content": content}


def _with_tool_prompt(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


_VERSIONS: dict[tuple[str, int, int], str] = {}


def file_version(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (remembered per path, size and mtime: a reload is free)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    found = _VERSIONS.get(key)
    if found is None:
        found = _VERSIONS[key] = sha256_of(path)[:16]
    return found


class LocalChatProvider(Provider):
    """A GGUF chat model on the embedded llama.cpp engine."""

    kind = "local"

    def __init__(
        self, alias: str, model: ModelSettings, engine: EngineSettings, options: Options | None = None
    ) -> None:
        super().__init__(alias, model)
        options = options or model.plugin_options(Options)
        self._path = options.path
        self._weights = options.weights
        self._lora = Path(options.lora).expanduser() if options.lora else None
        self._lora_scale = options.lora_scale
        self.engine_settings = engine
        self._engine: ChatEngine | None = None
        self._template: ChatTemplate | None = None
        self._state = "not loaded"

    # ---- lifecycle ----

    async def start(self) -> None:
        """Load the model on a worker thread; the event loop keeps serving meanwhile."""
        self._state = "loading"
        try:
            await asyncio.to_thread(self._load)
        except Exception as exc:
            self._state = f"failed: {exc}"
            raise

    def _load(self) -> None:
        if self._path:
            path = Path(self._path).expanduser()
            self.model_version = file_version(path)
        else:  # converted on the first start if `make install` did not (seconds)
            served = served_file(default_model_path(), self._weights)
            path, self.model_version = served.path, served.sha256[:16]
        if self._lora is not None:  # the adapter is part of what is served: it is in the version too
            self.model_version += "+" + file_version(self._lora)
        engine = ChatEngine(path, self.engine_settings, lora_path=self._lora, lora_scale=self._lora_scale)
        engine.load()
        gguf = engine.model
        assert gguf is not None
        self._template = ChatTemplate(
            gguf.meta("tokenizer.chat_template"), bos_token=gguf.bos_text(), eos_token=gguf.eos_text()
        )
        self._engine = engine
        self._state = "ready"

    async def close(self) -> None:
        """Stop the engine thread and free the model."""
        engine, self._engine = self._engine, None
        self._state = "closed"
        if engine is not None:
            await asyncio.to_thread(engine.close)

    def readiness(self) -> tuple[bool, str]:
        """Ready once the model is loaded and the engine thread is healthy."""
        if self._engine is None:
            return False, self._state
        return self._engine.state == "ready", self._engine.state

    def stats(self) -> dict[str, Any]:
        """Engine load and counters (slots busy, queue length, max_batch_seqs …) for /readyz."""
        if self._engine is None:
            return {"state": self._state}
        return dataclasses.asdict(self._engine.stats())

    def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` with the model's tokenizer; None until the model is loaded."""
        if self._engine is None or self._engine.model is None:
            return None
        return len(self._engine.model.tokenize(text, add_special=False, parse_special=False))

    def count_prompt(self, request: ChatRequest) -> int | None:
        """The tokens the engine would be given for `request`: the chat template rendered, tools included."""
        if self._engine is None or self._engine.model is None:
            return None
        return len(self._plan(request).prompt)

    # ---- requests ----

    def _ready_engine(self) -> tuple[ChatEngine, ChatTemplate]:
        if self._engine is None or self._template is None:
            raise Unavailable(f"model '{self.alias}' is not loaded ({self._state})")
        return self._engine, self._template

    def _plan(self, request: ChatRequest) -> _Plan:
        refuse_unsupported(request)
        engine, template = self._ready_engine()
        gguf = engine.model
        assert gguf is not None
        mode, tools, forced = tool_choice(request)
        parallel = bool(tools) and parallel_calls(request, forced)
        messages = [_message_dict(m) for m in request.messages]
        tool_dicts = [{"type": "function", "function": dataclasses.asdict(t)} for t in tools] or None
        if tools and not template.supports_tools():
            prompt_text = grammar.describe_tools(tools, required=mode == "required", forced=forced, parallel=parallel)
            messages = _with_tool_prompt(messages, prompt_text)
        try:
            prompt = prompt_tokens(gguf, template, messages, tool_dicts)
            rule = self._grammar(request, mode, tools, parallel)
        except TemplateRenderError as exc:
            raise BadRequest(str(exc), code="invalid_value", param="messages") from None
        except grammar.SchemaError as exc:
            param = "tools" if tools else "response_format"
            raise BadRequest(str(exc), code="invalid_value", param=param) from None
        params = SamplingParams(
            max_tokens=request.output_limit() or self.engine_settings.max_tokens_default,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=top_k_of(request),
            min_p=min_p_of(request),
            seed=request.seed,
            stop=tuple(request.stop_list()),
            grammar=rule,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            logit_bias=logit_bias_of(request),
        )
        return _Plan(prompt, params, mode)

    @staticmethod
    def _grammar(request: ChatRequest, mode: ToolMode, tools: list[grammar.ToolSpec], parallel: bool) -> str | None:
        # Tools win over response_format: a tool call is itself JSON the client must be able to parse.
        if mode != "none":
            return grammar.tool_call_grammar(tools, allow_text=mode == "auto", parallel=parallel)
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return grammar.json_object_grammar()
        assert fmt.json_schema is not None
        return grammar.json_schema_grammar(fmt.json_schema.schema_)

    def _submit(self, request: ChatRequest) -> tuple[_Plan, Generation]:
        plan = self._plan(request)
        engine, _ = self._ready_engine()
        return plan, engine.submit(plan.prompt, plan.params, CACHE_PARTITION.get())

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """A complete answer, with exact usage."""
        plan, generation = self._submit(request)
        parts: list[str] = []
        finish: Finish | None = None
        try:
            async for event in generation.events():
                if isinstance(event, Finish):
                    finish = event
                else:
                    parts.append(event)
        finally:
            generation.cancel()
        assert finish is not None
        text = "".join(parts)
        message = AssistantMessage(content=text)
        reason: FinishReason = finish.reason
        if plan.tool_mode != "none" and grammar.looks_like_call(text):
            parsed = grammar.parse_tool_calls(text)
            if parsed is not None:
                calls = [ToolCall(id=_new_id("call_"), function=FunctionCall(name=n, arguments=a)) for n, a in parsed]
                message = AssistantMessage(content=None, tool_calls=calls)
                reason = "tool_calls"
        return ChatResponse(
            id=_new_id("chatcmpl-"),
            created=int(time.time()),
            model=self.alias,
            choices=[Choice(message=message, finish_reason=reason)],
            usage=Usage.of(finish.prompt_tokens, finish.completion_tokens),
        )

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Chunks as tokens arrive; errors (bad request, queue full) raise here, before any chunk."""
        plan, generation = self._submit(request)
        return self._chunks(plan, generation)

    async def _chunks(self, plan: _Plan, generation: Generation) -> AsyncIterator[ChatChunk]:
        cid, created = _new_id("chatcmpl-"), int(time.time())

        def chunk(delta: Delta, reason: FinishReason | None = None) -> ChatChunk:
            choice = ChunkChoice(delta=delta, finish_reason=reason)
            return ChatChunk(id=cid, created=created, model=self.alias, choices=[choice])

        try:
            yield chunk(Delta(role="assistant", content=""))
            # With tools, output that opens with "{" is a call and is held until it is complete.
            held: list[str] = []
            is_call: bool | None = None if plan.tool_mode != "none" else False
            finish: Finish | None = None
            async for event in generation.events():
                if isinstance(event, Finish):
                    finish = event
                elif is_call is False:
                    yield chunk(Delta(content=event))
                else:
                    held.append(event)
                    if is_call is None and "".join(held).strip():
                        is_call = grammar.looks_like_call("".join(held))
                        if not is_call:
                            yield chunk(Delta(content="".join(held)))
                            held = []
            assert finish is not None
            reason: FinishReason = finish.reason
            parsed = grammar.parse_tool_calls("".join(held)) if is_call else None
            if parsed is not None:
                for i, (name, arguments) in enumerate(parsed):
                    call = ToolCallDelta(
                        index=i, id=_new_id("call_"), type="function", function={"name": name, "arguments": arguments}
                    )
                    yield chunk(Delta(tool_calls=[call]))
                reason = "tool_calls"
            elif held:
                yield chunk(Delta(content="".join(held)))
            yield chunk(Delta(), reason)
            usage = Usage.of(finish.prompt_tokens, finish.completion_tokens)
            yield ChatChunk(id=cid, created=created, model=self.alias, usage=usage)
        finally:
            generation.cancel()
