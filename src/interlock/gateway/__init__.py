"""The request path: one request from admission to settlement, its hooks, pricing and token counting."""
