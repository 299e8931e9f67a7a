"""anyon: the server behind the Anyon task board."""

__version__ = "0.1.0"
