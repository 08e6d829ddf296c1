"""The numpy GGUF reader the learned router uses for SmolLM2's token table."""

from __future__ import annotations

import numpy as np

from interlock.engines.gguf import GgufFile, default_model_path


def test_q8_0_table_dequantises_block_by_block_and_as_float16() -> None:
    gguf = GgufFile.open(default_model_path())
    assert len(gguf.metadata["tokenizer.ggml.tokens"]) == 49152
    _, kind, offset = gguf.tensors["token_embd.weight"]
    assert kind == 8  # Q8_0: blocks of a float16 scale and 32 int8s
    table = gguf.tensor("token_embd.weight")
    assert table.shape == (49152, 576) and table.dtype == np.float32
    # The last block of the table, decoded by hand from the file's bytes.
    raw = np.fromfile(gguf.path, np.uint8, 34, offset=offset + (table.size // 32 - 1) * 34)
    expected = raw[2:].view(np.int8).astype(np.float32) * raw[:2].view("<f2").astype(np.float32)
    np.testing.assert_array_equal(table[-1, -32:], expected)
    half = gguf.tensor("token_embd.weight", np.float16)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, table.astype(np.float16))
