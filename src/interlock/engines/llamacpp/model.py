"""A loaded GGUF model: weights, tokenizer and the chat template from its metadata."""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

from interlock.engines.gguf import default_model_path

__all__ = ["GgufModel", "default_model_path", "quiet_llama_logs"]


def quiet_llama_logs() -> None:
    """Keep llama.cpp's load-time chatter out of the gateway log; errors still show."""
    from llama_cpp import _logger

    _logger.set_verbose(False)


class GgufModel:
    """Model weights and vocabulary; tokenization is read-only and safe from any thread."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file {path} does not exist")
        self.path = path
        params = llama_cpp.llama_model_default_params()
        self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._pieces: dict[int, bytes] = {}
        self._specials: tuple[str, ...] | None = None

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or None when absent."""
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:  # the template is longer than the buffer: ask again with the exact size
            buf = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Token ids of `text`; `add_special` adds BOS when the model wants it."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; special tokens render as nothing."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        out = buf.raw[:n]
        self._pieces[token] = out
        return out

    def special_text(self, token: int) -> str:
        """The text of a special token such as BOS or EOS, for chat templates."""
        if token < 0:
            return ""
        text = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", errors="replace") if text else ""

    def special_texts(self) -> tuple[str, ...]:
        """The spellings of every control token (`<|im_start|>`, ...), longest first; computed once."""
        if self._specials is None:
            flags = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
            found = {
                self.special_text(t)
                for t in range(self.n_vocab)
                if int(llama_cpp.llama_vocab_get_attr(self.vocab, t)) & flags
            }
            self._specials = tuple(sorted((s for s in found if s), key=len, reverse=True))
        return self._specials

    def bos_text(self) -> str:
        """BOS as text."""
        return self.special_text(int(llama_cpp.llama_vocab_bos(self.vocab)))

    def eos_text(self) -> str:
        """EOS as text."""
        return self.special_text(int(llama_cpp.llama_vocab_eos(self.vocab)))

    def is_eog(self, token: int) -> bool:
        """Whether the token ends generation (EOS, EOT, <|im_end|> …)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def adds_bos(self) -> bool:
        """Whether prompts start with BOS."""
        return self._add_bos

    def close(self) -> None:
        """Free the weights."""
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None
