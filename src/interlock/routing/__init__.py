"""Choosing where a request goes: aliases to deployments."""
