"""The OpenTelemetry GenAI semantic-convention names Interlock's spans use, pinned to one version.

The GenAI conventions are still "Development" status and their names move (`gen_ai.system` became
`gen_ai.provider.name` in 1.37.0), and the Python package that shipped them now marks them deprecated
(moved to a separate repository), so the names are written out here, once, for the version we follow.
Changing version: update `GENAI_SEMCONV_VERSION`, check each name against
https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/ and the README's Traces section.
"""

from __future__ import annotations

from urllib.parse import urlsplit

GENAI_SEMCONV_VERSION = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{GENAI_SEMCONV_VERSION}"

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
HTTP_ROUTE = "http.route"

# Interlock's own attributes, beside the conventions.
REQUEST_ID = "interlock.request_id"
ENDPOINT = "interlock.endpoint"
DEPLOYMENT = "interlock.deployment"
ATTEMPTS = "interlock.attempts"
CACHE = "interlock.cache"
COST_USD = "interlock.cost_usd"
STATUS = "interlock.status"

# Our endpoints -> gen_ai.operation.name (a messages or responses request is a chat underneath).
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}

# Hosts of providers the conventions name; any other OpenAI-compatible upstream keeps our provider name.
_WELL_KNOWN_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
}


def provider_name(kind: str, base_url: str | None) -> str:
    """`gen_ai.provider.name` of a deployment: a well-known provider by its host, else ours (`local`, ...)."""
    if kind == "anthropic":
        return "anthropic"
    host = urlsplit(base_url).hostname if base_url else None
    return _WELL_KNOWN_HOSTS.get(host or "", kind)
