"""Providers: one small async interface per way of talking to a model."""
