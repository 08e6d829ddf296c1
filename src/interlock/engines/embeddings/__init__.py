"""Sentence embeddings from a locally shipped model."""
