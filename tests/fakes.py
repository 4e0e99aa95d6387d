"""In-memory fakes for fast tests: a scripted chat model, and a small app over real catalogue records with
the in-memory vector index, hash embedder and state store (chatrec.adapters.memory). The real adapters
pass the same contract tests (tests/system/test_vector_index_contract.py)."""

from __future__ import annotations

import json
from pathlib import Path

from chatrec.llm.backends import BackendInfo, ChatBackend

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "data" / "movies.jsonl"


class ScriptedModel(ChatBackend):
    """Answers from a queue (the last answer repeats: an explanation asks once per pick); raises what it is
    given. Records every call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list = []
        self.info = BackendInfo("scripted", "scripted", 2048)

    def count_tokens(self, text):
        return len(text.split())

    def _next(self):
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, Exception):
            raise a
        return a

    def complete(self, messages, json_schema=None, max_tokens=None, temperature=0.0, grammar=None):
        self.calls.append(("complete", messages, json_schema))
        return self._next()

    def stream(self, messages, max_tokens=None, temperature=0.3, grammar=None):
        self.calls.append(("stream", messages, None))
        a = self._next()
        yield from (w + " " for w in a.split(" ")) if a else ()


def catalogue_records(n: int | None = None, where=None) -> list[dict]:
    """Records of the bundled catalogue (the first ``n``, or those ``where`` accepts)."""
    out = []
    with CATALOG.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if where is None or where(rec):
                out.append(rec)
            if n is not None and len(out) >= n:
                break
    return out


def small_app(items=None, n: int = 600, model=None, tmp_path: Path | None = None, **settings):
    """An App over ``items`` (default: the first ``n`` bundled movies) with in-memory adapters, indexed."""
    from chatrec.adapters.memory import HashEmbedder, MemoryIndex, MemoryState
    from chatrec.app import App
    from chatrec.core.items import Item
    from chatrec.settings import Settings

    if items is None:
        items = [Item.from_record(r) for r in catalogue_records(n)]
    options = {"llm": "none", "interactions": None, **settings}
    app = App(Settings(data_dir=tmp_path or Path("/nonexistent-chatrec-test-dir"), **options), "movies",
              index=MemoryIndex("movies"), embedder=HashEmbedder(), state=MemoryState(), model=model)
    app.index.build(items)
    return app
