"""Prompts are files in ``chatrec/prompts/`` (also reachable as the top-level ``prompts/``),
shipped with the package and loaded through importlib.resources."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    return resources.files("chatrec").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8").strip()


def wrap_data(label: str, text: str) -> str:
    """User or item text enters a prompt as delimited data, never as instructions.

    The delimiter cannot be forged: any ``<<<``/``>>>`` inside the text is defused first.
    """
    clean = (text or "").replace("<<<", "‹‹‹").replace(">>>", "›››")
    return f"<<<{label.upper()}\n{clean}\n{label.upper()}>>>"
