"""The package version (its own module, so the modules the front door names can read it without
importing the front door)."""

__version__ = "0.1.0"
