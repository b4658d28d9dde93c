"""dicomhub: a public archive for research imaging."""

__version__ = "0.1.0"
