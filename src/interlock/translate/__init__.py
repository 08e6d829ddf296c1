"""Wire-format translation as pure functions: OpenAI-compatible and Anthropic."""
