"""`chatrec eval extraction`: micro-F1 over (genre, polarity) pairs on labelled messages.

Cases are JSONL ``{"message", "likes", "dislikes"}`` with MovieLens genre labels. The system's
tags map to genres the way the ranking reads them: a liked tag counts for a genre when it is
that genre's tag key (``"sci-fi"`` → Sci-Fi); other tags (keywords) are not genres.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from chatrec.catalogue.importer import CatalogError
from chatrec.core.preferences import GENRES
from chatrec.llm.extract import Extractor, micro_f1


def load_cases(path: Path) -> list[dict]:
    cases = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CatalogError(path, None, f"cannot read: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            message, likes, dislikes = case["message"], case.get("likes", []), case.get("dislikes", [])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise CatalogError(path, n, f"expected {{\"message\", \"likes\", \"dislikes\"}}: {exc}") from None
        unknown = [g for g in [*likes, *dislikes] if g not in GENRES]
        if unknown:
            raise CatalogError(path, n, f"labels must be MovieLens genres; unknown: {unknown}")
        cases.append({"message": str(message), "likes": list(likes), "dislikes": list(dislikes)})
    if not cases:
        raise CatalogError(path, None, "no cases")
    return cases


def evaluate(extractor: Extractor, cases: list[dict]) -> dict:
    pairs = []
    errors = []
    t0 = time.perf_counter()
    for case in cases:
        prefs = extractor.extract(case["message"])
        gold = {(g, "+") for g in case["likes"]} | {(g, "-") for g in case["dislikes"]}
        pred = {(g, "+") for g in prefs.genres("+")} | {(g, "-") for g in prefs.genres("-")}
        pairs.append((gold, pred))
        if gold != pred:
            errors.append({"message": case["message"], "gold": sorted(gold), "predicted": sorted(pred)})
    result = micro_f1(pairs)
    result["seconds_per_message"] = round((time.perf_counter() - t0) / max(len(cases), 1), 4)
    result["mode"] = extractor.mode if extractor.llm is not None else "rules"
    result["errors"] = errors
    return result
