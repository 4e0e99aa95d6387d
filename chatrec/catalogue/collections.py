"""Which collection a catalogue file goes into, and which one `recommend` and `chat` use."""

from __future__ import annotations

import json
from pathlib import Path

from chatrec.files import atomic_write_text

ACTIVE_FILE = "active.json"


def collection_for(path: Path | str) -> str:
    """The collection a catalogue file is indexed into: its file stem, made Chroma-safe."""
    stem = Path(path).name.split(".")[0].lower()
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-_") or "items"
    safe = safe if len(safe) >= 3 else f"{safe}-items"
    return safe[:60]


def active_collection(data_dir: Path, default: str) -> str:
    """The collection indexed last (``default`` when none was)."""
    try:
        return json.loads((Path(data_dir) / ACTIVE_FILE).read_text())["collection"]
    except (OSError, ValueError, KeyError, TypeError):
        return default


def set_active_collection(data_dir: Path, name: str) -> None:
    atomic_write_text(Path(data_dir) / ACTIVE_FILE, json.dumps({"collection": name}) + "\n")
