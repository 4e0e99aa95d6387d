"""Prompts are the files in the top-level ``prompts/`` folder, installed as the package ``chatrec.prompts``
(``pyproject.toml`` maps it) and loaded through importlib.resources, so an installed copy has them too."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    return resources.files("chatrec.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8").strip()


def wrap_data(label: str, text: str) -> str:
    """User or item text enters a prompt as delimited data, never as instructions.

    The delimiter cannot be forged: any ``<<<``/``>>>`` inside the text is defused first.
    """
    clean = (text or "").replace("<<<", "‹‹‹").replace(">>>", "›››")
    return f"<<<{label.upper()}\n{clean}\n{label.upper()}>>>"
