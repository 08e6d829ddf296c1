"""The embedded llama.cpp chat engine: continuous batching off the event loop."""
