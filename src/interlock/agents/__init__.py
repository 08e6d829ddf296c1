"""Governed agents: the tool policy on every tool call a model returns, with provenance (see `hook`)."""
