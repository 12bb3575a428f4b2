"""Thin entry points: parse arguments, build configs, call the library."""
