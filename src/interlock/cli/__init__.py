"""The interlock command line."""
