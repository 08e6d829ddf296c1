"""Models run in-process."""
