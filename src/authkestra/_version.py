"""The package's version: one place, read by the package and by what it sends (User-Agent)."""

__version__ = "0.1.0"
