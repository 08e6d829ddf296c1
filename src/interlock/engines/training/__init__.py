"""Training in a subprocess: LoRA fine-tuning of the embedded model on the CPU (`interlock[train]`).

Only `lora.py` imports torch, and only inside the `python -m interlock.engines.training.lora` process;
`adapters.py` writes what it learned as GGUF with the `gguf` package, for the llama.cpp engine.
"""
