"""The package version (its own module, so the core reads it without importing the package's API)."""

__version__ = "0.2.0"
