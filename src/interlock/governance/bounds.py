"""The worst case a request can be billed for its prompt, in tokens, before any model has seen it.

Everything the upstream may bill is counted: every message's text parts, names, tool calls (names and
arguments) and any field the client added to a message; the `tools` definitions; `response_format` and
its JSON schema; every other request field that is passed on (newer parameters such as `prediction`
are billed by some providers); plus the chat template's overhead. The count is the length of that
content serialised as JSON, in UTF-8 bytes: no byte-level BPE tokenizer makes more tokens than a text
has bytes, and JSON only adds bytes (quotes, escapes, punctuation) to the strings it holds.

Images are not bytes of text: each image part counts `image_tokens` (the provider's documented worst
case; OpenAI's largest high-detail image is 1,445 tokens on GPT-4o and up to about 2,500 on models
priced by patches; Anthropic caps an image at about 1,600) and its URL or data is not counted.
"""

from __future__ import annotations

from interlock.types import ChatRequest, EmbeddingRequest, ImagePart

PER_MESSAGE_OVERHEAD = 8  # tokens a chat template may add around each message
PER_REQUEST_OVERHEAD = 16  # ... around the whole conversation
TOOLS_OVERHEAD = 512  # the preamble a template adds when tools are offered (Llama 3.1, Hermes, ...)
FORMAT_OVERHEAD = 128  # the instruction a provider adds to enforce a response format
DEFAULT_IMAGE_TOKENS = 2_500

# Fields that are not part of the prompt: sampling and transport settings, and our own bookkeeping.
_NOT_BILLED = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "metadata",
    }
)


def _without_images(request: ChatRequest) -> tuple[ChatRequest, int]:
    """The request with its image parts taken out, and how many there were."""
    images = 0
    messages = []
    for message in request.messages:
        if isinstance(message.content, list) and any(isinstance(p, ImagePart) for p in message.content):
            kept = [p for p in message.content if not isinstance(p, ImagePart)]
            images += len(message.content) - len(kept)
            message = message.model_copy(update={"content": kept})
        messages.append(message)
    if not images:
        return request, 0
    return request.model_copy(update={"messages": messages}), images


def chat_prompt_bound(request: ChatRequest, image_tokens: int = DEFAULT_IMAGE_TOKENS) -> int:
    """An upper bound on the prompt tokens any upstream can bill for `request`."""
    text_only, images = _without_images(request)
    body = text_only.model_dump_json(exclude=set(_NOT_BILLED), exclude_none=True)
    bound = len(body.encode()) + PER_MESSAGE_OVERHEAD * len(request.messages) + PER_REQUEST_OVERHEAD
    if request.tools:
        bound += TOOLS_OVERHEAD
    if request.response_format is not None:
        bound += FORMAT_OVERHEAD
    return bound + images * image_tokens


def embedding_prompt_bound(request: EmbeddingRequest) -> int:
    """An upper bound on the input tokens of an embeddings request."""
    texts = request.texts()
    return sum(len(t.encode()) for t in texts) + PER_MESSAGE_OVERHEAD * len(texts) + PER_REQUEST_OVERHEAD
