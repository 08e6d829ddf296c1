"""Render the model's own chat template (GGUF `tokenizer.chat_template`) with sandboxed jinja2."""

from __future__ import annotations

import datetime
import json
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# ChatML, for GGUF files that carry no template of their own.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


class TemplateRenderError(ValueError):
    """The chat template refused the conversation (for example, roles out of order)."""


def _raise(message: str) -> NoReturn:
    raise TemplateRenderError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    # Hugging Face's tojson keeps non-ASCII text as is; templates rely on that.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class ChatTemplate:
    """A compiled chat template; rendering is pure and thread-safe."""

    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        self.source = source or FALLBACK_TEMPLATE
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = _strftime_now
        self._template = env.from_string(self.source)
        self._bos = bos_token
        self._eos = eos_token

    def supports_tools(self) -> bool:
        """Whether the template renders `tools` itself; if not, tools go into the system message."""
        return "tools" in self.source

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opener."""
        try:
            return self._template.render(
                messages=messages,
                tools=tools,
                add_generation_prompt=True,
                bos_token=self._bos,
                eos_token=self._eos,
            )
        except TemplateRenderError:
            raise
        except (TemplateError, TypeError, KeyError, IndexError) as exc:
            raise TemplateRenderError(f"the model's chat template failed: {exc}") from exc
