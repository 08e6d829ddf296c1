"""The gateway's HTTP surface: OpenAI and Anthropic wire formats, SSE, errors, admin."""
