"""`chatrec eval requests`: do the top picks meet what a request asks for (people, years, genres, runtime)?

A case is one JSON line: ``{"message", "genres_any"?, "genres_all"?, "genres_none"?, "year_min"?,
"year_max"?, "cast_any"?, "director_any"?}`` (the format of ``../shared/data/requests_dev.jsonl``) and,
in our own sets, ``cast_none``, ``director_none``, ``runtime_min``, ``runtime_max``. Each message goes
through ``chatrec recommend`` (the chat's own turn) and each of the top-k picks is checked against each
constraint group the case has: cast (``cast_any``), director (``director_any``), year (``year_min`` and
``year_max`` together), genre (all ``genres_*`` keys together), and the extra groups. People are compared
by exact name, years inclusive, genres as the catalogue's (MovieLens) genres.

Figures: ``check_rate`` over all (pick, group) checks, ``requests_all_top5_ok`` the share of requests
whose k picks all pass everything (fewer than k picks fail), and ``rate_<group>`` per group.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from chatrec.core.preferences import GENRES

KEYS = {"message", "genres_any", "genres_all", "genres_none", "year_min", "year_max", "cast_any", "director_any",
        "cast_none", "director_none", "runtime_min", "runtime_max"}
#: check group → the case keys it covers (the first four are the contract's figures)
GROUPS = {
    "cast": ("cast_any",), "director": ("director_any",), "year": ("year_min", "year_max"),
    "genre": ("genres_any", "genres_all", "genres_none"), "cast_none": ("cast_none",),
    "director_none": ("director_none",), "runtime": ("runtime_min", "runtime_max"),
}


class RequestCaseError(ValueError):
    pass


def load_cases(path: Path) -> list[dict]:
    cases = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestCaseError(f"{path}, line {n}: invalid JSON ({exc.msg})") from None
        if not isinstance(case, dict) or not isinstance(case.get("message"), str):
            raise RequestCaseError(f"{path}, line {n}: expected an object with a \"message\" string")
        unknown = set(case) - KEYS
        if unknown:
            raise RequestCaseError(f"{path}, line {n}: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
        bad = [g for k in ("genres_any", "genres_all", "genres_none") for g in case.get(k, []) if g not in GENRES]
        if bad:
            raise RequestCaseError(f"{path}, line {n}: not MovieLens genres: {bad}")
        cases.append(case)
    if not cases:
        raise RequestCaseError(f"{path}: no cases")
    return cases


def check(case: dict, item) -> dict[str, bool]:
    """Whether ``item`` meets each constraint group ``case`` has."""
    out: dict[str, bool] = {}
    genres = set(item.genres)
    for group, keys in GROUPS.items():
        present = [k for k in keys if k in case]
        if not present:
            continue
        ok = True
        for key in present:
            value = case[key]
            if key == "cast_any":
                ok &= bool(set(value) & set(item.cast))
            elif key == "director_any":
                ok &= bool(set(value) & set(item.directors))
            elif key == "cast_none":
                ok &= not set(value) & set(item.cast)
            elif key == "director_none":
                ok &= not set(value) & set(item.directors)
            elif key == "year_min":
                ok &= item.year is not None and item.year >= value
            elif key == "year_max":
                ok &= item.year is not None and item.year <= value
            elif key == "genres_any":
                ok &= bool(set(value) & genres)
            elif key == "genres_all":
                ok &= set(value) <= genres
            elif key == "genres_none":
                ok &= not set(value) & genres
            elif key == "runtime_min":
                ok &= item.runtime is not None and item.runtime >= value
            elif key == "runtime_max":
                ok &= item.runtime is not None and item.runtime <= value
        out[group] = bool(ok)
    return out


def evaluate(engine, cases: list[dict], k: int = 5) -> dict:
    """Each case through ``engine.recommend`` (k picks), every pick checked (see the module docstring)."""
    t0 = time.perf_counter()
    held: dict[str, int] = {g: 0 for g in GROUPS}
    total: dict[str, int] = {g: 0 for g in GROUPS}
    all_ok, errors = 0, []
    for case in cases:
        reply = engine.recommend(case["message"], k=k)
        picks = reply.recommendations[:k]
        misses = []
        for rec in picks:
            for group, ok in check(case, rec.item).items():
                total[group] += 1
                held[group] += ok
                if not ok:
                    misses.append(f"{rec.item.display_title}: {group}")
        if len(picks) == k and not misses:
            all_ok += 1
        else:
            errors.append({"message": case["message"], "understood": reply.understood, "misses": misses,
                           "picks": [r.item.display_title for r in picks]})
    checks = sum(total.values())

    def rate(group: str) -> float | None:
        return round(held[group] / total[group], 4) if total[group] else None

    out = {"n": len(cases), "k": k, "check_rate": round(sum(held.values()) / checks, 4) if checks else None,
           "requests_all_top5_ok": round(all_ok / len(cases), 4) if cases else None}
    out.update({f"rate_{g}": rate(g) for g in GROUPS})
    out["checks"] = checks
    out["seconds_per_request"] = round((time.perf_counter() - t0) / max(len(cases), 1), 4)
    out["errors"] = errors
    return out
