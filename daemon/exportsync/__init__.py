"""exportsync: watch an export folder and deliver every file within an API usage plan."""

__all__ = ["__version__"]

__version__ = "0.1.0"
