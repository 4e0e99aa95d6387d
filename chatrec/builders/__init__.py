"""Reproducible builders for the data files shipped in ``data/``."""

from __future__ import annotations

from chatrec.files import atomic_output  # noqa: F401  (the builders' atomic writer)


class SourceError(Exception):
    """A builder's input is missing or malformed; the message names the file (and line)."""


