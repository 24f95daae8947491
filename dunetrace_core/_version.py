"""The package's version, read by setuptools at build time and by ``dunetrace version``."""

__version__ = "0.1.0"
