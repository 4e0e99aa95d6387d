#!/usr/bin/env python3
"""Satisfiability check for request eval cases (data/eval/requests_*.jsonl).

Joins the shared data independently of chatrec's own code, then, for every case in the given
JSONL files, counts the MovieLens movies that satisfy every constraint of the case.

  MovieLens movies.csv + links.csv   -> id, year (4-digit year in parentheses at the end of the
                                        title; first year of a range), genres
  tmdb-10k/tmdb-movies.csv           -> cast (top 5), director(s), runtime, joined by links tmdbId
                                        (mojibake repaired name by name; first row of a duplicated id)
  tmdb-ml-enriched/movies_enriched.csv -> the same fields (first director, top-3 cast) for movies
                                        tmdb-10k does not cover, only where its tmdb_id == links tmdbId

Exit status 1 when any case has fewer than --min satisfying movies (default 5), uses an unknown
key, an unknown genre, a malformed value, or a person's name that does not occur in the joined
data (cast names among cast, director names among directors). Standard library only.

  python3 scripts/check_request_cases.py data/eval/requests_dev2.jsonl ../shared/data/requests_dev.jsonl
"""
import argparse
import csv
import json
import os
import re
import sys

GENRES = {
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
}
LIST_KEYS = {
    "genres_any", "genres_all", "genres_none",
    "cast_any", "cast_none", "director_any", "director_none",
}
INT_KEYS = {"year_min", "year_max", "runtime_min", "runtime_max"}
KEYS = {"message"} | LIST_KEYS | INT_KEYS

YEAR_RE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*\d{4})?\)\s*$")


def fix_mojibake(s):
    try:
        t = s.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s
    return t


def split_names(s, fix=False):
    out = []
    for part in (s or "").split("|"):
        part = part.strip()
        if fix:
            part = fix_mojibake(part)
        if part:
            out.append(part)
    return out


def to_int(s):
    try:
        v = int(float(s))
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def load(data_dir):
    ml = os.path.join(data_dir, "movielens-ml-latest-small")
    links = {}
    with open(os.path.join(ml, "links.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            links[r["movieId"]] = (r["tmdbId"] or "").strip()

    tmdb10k = {}
    with open(os.path.join(data_dir, "tmdb-10k", "tmdb-movies.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            tid = r["id"].strip()
            if tid in tmdb10k:  # 42194 occurs twice: keep the first row
                continue
            tmdb10k[tid] = {
                "cast": split_names(r["cast"], fix=True),
                "director": split_names(r["director"], fix=True),
                "runtime": to_int(r["runtime"]),
            }

    enriched = {}
    path = os.path.join(data_dir, "tmdb-ml-enriched", "movies_enriched.csv")
    with open(path, encoding="utf-8-sig", newline="") as f:
        for r in csv.DictReader(f):
            enriched[r["movie_id"]] = r

    movies = []
    stats = {"movies": 0, "tmdb10k": 0, "enriched": 0, "none": 0, "no_year": 0}
    with open(os.path.join(ml, "movies.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            mid = r["movieId"]
            m = YEAR_RE.search(r["title"].strip())
            genres = set(g for g in r["genres"].split("|") if g in GENRES)
            item = {"id": mid, "title": r["title"], "year": int(m.group(1)) if m else None,
                    "genres": genres, "cast": [], "director": [], "runtime": None}
            tid = links.get(mid, "")
            if tid and tid in tmdb10k:
                item.update(tmdb10k[tid])
                stats["tmdb10k"] += 1
            else:
                e = enriched.get(mid)
                if tid and e and (e.get("tmdb_id") or "").strip() == tid:
                    item["cast"] = split_names(e.get("cast_top3"))
                    item["director"] = split_names(e.get("director"))
                    item["runtime"] = to_int(e.get("runtime"))
                    stats["enriched"] += 1
                else:
                    stats["none"] += 1
            if item["year"] is None:
                stats["no_year"] += 1
            stats["movies"] += 1
            movies.append(item)
    return movies, stats


def satisfies(item, case):
    g = item["genres"]
    if "genres_any" in case and not g & set(case["genres_any"]):
        return False
    if "genres_all" in case and not set(case["genres_all"]) <= g:
        return False
    if "genres_none" in case and g & set(case["genres_none"]):
        return False
    y = item["year"]
    if "year_min" in case and (y is None or y < case["year_min"]):
        return False
    if "year_max" in case and (y is None or y > case["year_max"]):
        return False
    rt = item["runtime"]
    if "runtime_min" in case and (rt is None or rt < case["runtime_min"]):
        return False
    if "runtime_max" in case and (rt is None or rt > case["runtime_max"]):
        return False
    cast, director = set(item["cast"]), set(item["director"])
    if "cast_any" in case and not cast & set(case["cast_any"]):
        return False
    if "cast_none" in case and cast & set(case["cast_none"]):
        return False
    if "director_any" in case and not director & set(case["director_any"]):
        return False
    if "director_none" in case and director & set(case["director_none"]):
        return False
    return True


def validate(case, all_cast, all_directors):
    errs = []
    if not isinstance(case, dict):
        return ["not a JSON object"]
    for k in case:
        if k not in KEYS:
            errs.append("unknown key %r" % k)
    if not isinstance(case.get("message"), str) or not case.get("message", "").strip():
        errs.append("missing or empty message")
    if len(case) < 2:
        errs.append("no constraint")
    for k in LIST_KEYS & set(case):
        v = case[k]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            errs.append("%s must be a non-empty list of strings" % k)
            continue
        for x in v:
            if k.startswith("genres_") and x not in GENRES:
                errs.append("unknown genre %r in %s" % (x, k))
            elif k.startswith("cast_") and x not in all_cast:
                errs.append("cast name %r not in the joined data" % x)
            elif k.startswith("director_") and x not in all_directors:
                errs.append("director name %r not in the joined data" % x)
    for k in INT_KEYS & set(case):
        if not isinstance(case[k], int) or isinstance(case[k], bool):
            errs.append("%s must be an integer" % k)
    for lo, hi in (("year_min", "year_max"), ("runtime_min", "runtime_max")):
        if isinstance(case.get(lo), int) and isinstance(case.get(hi), int) and case[lo] > case[hi]:
            errs.append("%s > %s" % (lo, hi))
    return errs


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="JSONL case files")
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"),
                    help="shared data folder (default: ../shared/data from the project root)")
    ap.add_argument("--min", type=int, default=5, help="fewest satisfying movies allowed (default 5)")
    ap.add_argument("--quiet", action="store_true", help="print only problems and the summary")
    args = ap.parse_args(argv)

    movies, st = load(os.path.normpath(args.data))
    all_cast = {n for m in movies for n in m["cast"]}
    all_directors = {n for m in movies for n in m["director"]}
    print("joined: %d movies; people from tmdb-10k %d, from tmdb-ml-enriched %d, none %d; "
          "without a year %d" % (st["movies"], st["tmdb10k"], st["enriched"], st["none"],
                                 st["no_year"]))

    bad_total = 0
    summary = []
    for path in args.files:
        counts, bad, n = [], 0, 0
        seen = set()
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        print("\n== %s" % path)
        for i, ln in enumerate(lines, 1):
            n += 1
            try:
                case = json.loads(ln)
            except ValueError as e:
                print("%3d  ERROR  invalid JSON: %s" % (i, e))
                bad += 1
                continue
            errs = validate(case, all_cast, all_directors)
            msg = case.get("message", "") if isinstance(case, dict) else ""
            key = msg.strip().lower()
            if key in seen:
                errs.append("duplicate message")
            seen.add(key)
            count = None
            if not any(e.startswith(("unknown key", "not a JSON")) for e in errs):
                try:
                    count = sum(1 for m in movies if satisfies(m, case))
                except TypeError:
                    errs.append("malformed constraint values")
            if count is not None:
                counts.append(count)
                if count < args.min:
                    errs.append("only %d satisfying movies (< %d)" % (count, args.min))
            if errs:
                bad += 1
            if errs or not args.quiet:
                cons = {k: v for k, v in case.items() if k != "message"} if isinstance(case, dict) else {}
                print("%3d  %5s  %-60s %s%s" % (
                    i, "-" if count is None else count, json.dumps(msg, ensure_ascii=False)[:60],
                    json.dumps(cons, ensure_ascii=False),
                    "".join("\n            ERROR " + e for e in errs)))
        s = ("%s: %d cases, %d with problems; satisfying movies min %s, median %s, max %s" % (
            path, n, bad, min(counts) if counts else "-",
            sorted(counts)[len(counts) // 2] if counts else "-", max(counts) if counts else "-"))
        summary.append(s)
        bad_total += bad

    print("\n== summary")
    for s in summary:
        print(s)
    print("OK" if not bad_total else "FAILED: %d case(s) with problems" % bad_total)
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
