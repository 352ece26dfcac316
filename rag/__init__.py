"""Grounded multilingual question answering over a folder of documents."""

__version__ = "0.2.0"
