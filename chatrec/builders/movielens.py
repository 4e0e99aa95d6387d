"""Build the default catalogue ``data/movies.jsonl`` from MovieLens latest-small and TMDB 5000.

Usage::

    python -m chatrec.builders.movielens --source ../shared/data --out data/movies.jsonl

The output has one JSON object per MovieLens movie, sorted by numeric movieId, with a fixed
key order (see ``FIELDS``).  Nothing in it depends on the time or machine of the build, so the
same inputs always give a byte-identical file.  Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from typing import Iterable, Iterator

from chatrec.builders import SourceError, atomic_output

MOVIELENS_DIR = "movielens-ml-latest-small"
TMDB_FILE = Path("tmdb-5000") / "tmdb_5000_movies.csv"

#: Required input files (relative to the source folder) and the columns each must have.
REQUIRED: dict[Path, tuple[str, ...]] = {
    Path(MOVIELENS_DIR) / "movies.csv": ("movieId", "title", "genres"),
    Path(MOVIELENS_DIR) / "links.csv": ("movieId", "imdbId", "tmdbId"),
    Path(MOVIELENS_DIR) / "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    Path(MOVIELENS_DIR) / "tags.csv": ("userId", "movieId", "tag", "timestamp"),
    TMDB_FILE: (
        "id", "title", "original_title", "release_date", "overview", "keywords",
        "popularity", "vote_average", "vote_count",
    ),
}

#: Keys of every output line, in output order.
FIELDS = (
    "id", "title", "aka", "year", "genres", "tags", "keywords", "overview", "text",
    "tmdb_id", "imdb_id", "n_ratings", "mean_rating", "recent_ratings", "last_rated",
    "tmdb_popularity", "tmdb_vote_average", "tmdb_vote_count",
)

NO_GENRES = "(no genres listed)"
RECENT_WINDOW_SECONDS = 365 * 24 * 60 * 60

# Articles MovieLens moves to the end of a title ("Matrix, The").  Besides the usual English,
# French, Spanish, Italian and German ones this includes the few others found in the data
# ("Bambini ci guardano, I", "Sjunde inseglet, Det", "Passion, En", "Hip Hop Witch, Da").
ARTICLES = (
    "The", "A", "An",
    "La", "Le", "Les", "L'", "Un", "Une",
    "El", "Los", "Las", "Una",
    "Il", "I", "Lo",
    "Das", "Der", "Die",
    "De", "Det", "En", "Da",
)
_ARTICLE_ALT = "|".join(re.escape(a) for a in sorted(ARTICLES, key=len, reverse=True))
# The article must end the title or come just before a ": subtitle" ("Crow, The: Wicked
# Prayer").  Case-sensitive on purpose: in "Good, the Bad and the Ugly, The" only the last one
# is a moved article.
_TRAILING_ARTICLE = re.compile(rf"^(?P<body>.+?),\s*(?P<art>{_ARTICLE_ALT})\s*(?P<rest>:.*)?$")
# "(1995)" at the end; a range "(2006–2007)" (TV series) keeps its first year.
_YEAR = re.compile(r"^(?P<body>.*?)\s*\((?P<year>\d{4})(?:\s*[-–]\s*\d{4})?\)$")
_AKA_PREFIX = re.compile(r"^(?:a\.\s*k\.\s*a\.?|aka\.?)\s+", re.IGNORECASE)


# --------------------------------------------------------------------------- pure helpers


def collapse_ws(text: str) -> str:
    """Strip and collapse runs of whitespace to one space."""
    return " ".join(text.split())


def move_article(title: str) -> str:
    """Move a trailing article to the front: "Matrix, The" -> "The Matrix"."""
    title = collapse_ws(title)
    m = _TRAILING_ARTICLE.match(title)
    if not m:
        return title
    body, art, rest = m.group("body").strip(), m.group("art"), m.group("rest") or ""
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{body}{rest}"


def split_parentheses(text: str) -> tuple[str, list[str]]:
    """Peel trailing parenthesised groups off ``text``: "A (B) (C)" -> ("A", ["B", "C"]).

    A group that would leave nothing in front of it ("(500) Days of Summer") stays in the title.
    """
    text = collapse_ws(text)
    groups: list[str] = []
    while text.endswith(")"):
        depth = 0
        start = -1
        for i in range(len(text) - 1, -1, -1):
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    start = i
                    break
        if start <= 0:  # unbalanced, or the whole remaining text is one group
            break
        groups.insert(0, text[start + 1 : -1].strip())
        text = text[:start].rstrip()
    return text, groups


def clean_aka(alt: str) -> str:
    """Normalise one alternative title: drop "a.k.a." and move a trailing article."""
    return move_article(_AKA_PREFIX.sub("", collapse_ws(alt)))


def parse_title(raw: str) -> tuple[str, list[str], int | None]:
    """Split a MovieLens title into (display title, alternative titles, year).

    >>> parse_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)")
    ('The City of Lost Children', ['La Cité des enfants perdus'], 1995)
    """
    text = collapse_ws(raw)
    year: int | None = None
    m = _YEAR.match(text)
    if m:
        text, year = m.group("body"), int(m.group("year"))
    main, groups = split_parentheses(text)
    title = move_article(main) or collapse_ws(raw)
    aka: list[str] = []
    seen = {title.casefold()}
    for group in groups:
        alt = clean_aka(group)
        if alt and alt.casefold() not in seen:
            seen.add(alt.casefold())
            aka.append(alt)
    return title, aka, year


def parse_genres(raw: str) -> list[str]:
    """Split the pipe-separated MovieLens genres; "(no genres listed)" -> []."""
    return [g.strip() for g in raw.split("|") if g.strip() and g.strip() != NO_GENRES]


def normalize_tag(tag: str) -> str:
    """Lower-case, strip and collapse the whitespace of a user tag."""
    return collapse_ws(tag).lower()


def order_tags(tags: Iterable[str]) -> list[str]:
    """Normalise, de-duplicate and order tags by application count (desc), then alphabetically."""
    counts = Counter(t for t in map(normalize_tag, tags) if t)
    return sorted(counts, key=lambda t: (-counts[t], t))


def build_text(title: str, year: int | None, overview: str) -> str:
    """The text to embed: "Title (Year). Overview", leaving out whatever is empty."""
    head = collapse_ws(title)
    if year is not None:
        head = f"{head} ({year})" if head else f"({year})"
    overview = collapse_ws(overview)
    if not overview:
        return head
    if not head:
        return overview
    # "What's Up, Doc?" needs no extra full stop.
    stop = "" if head[-1] in ".!?" else "."
    return f"{head}{stop} {overview}"


def normalize_for_match(title: str) -> str:
    """Title key for fuzzy-free matching: NFKD, no accents, lower, article moved, no punctuation."""
    text = move_article(title)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("&", " and ")
    text = re.sub(r"['’`]", "", text)  # "schindler's" == "schindlers"
    text = re.sub(r"[\W_]+", " ", text)
    return collapse_ws(text)


def imdb_id(raw: str) -> str | None:
    raw = raw.strip()
    return f"tt{int(raw):07d}" if raw.isdigit() else None


def iso_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).date().isoformat()


def _int_or_none(raw: str) -> int | None:
    raw = raw.strip()
    try:
        return int(raw)
    except ValueError:
        try:
            return int(float(raw))
        except ValueError:
            return None


def _float_or_none(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _tmdb_year(release_date: str) -> int | None:
    m = re.match(r"^(\d{4})-", release_date.strip())
    return int(m.group(1)) if m else None


def _keyword_names(raw: str) -> list[str]:
    try:
        items = json.loads(raw) if raw.strip() else []
    except json.JSONDecodeError:
        return []
    return [k["name"] for k in items if isinstance(k, dict) and k.get("name")]


# --------------------------------------------------------------------------- reading


def check_source(source: Path) -> None:
    """Raise SourceError unless every required file exists (and is a file)."""
    if not source.is_dir():
        raise SourceError(f"source folder not found: {source}")
    missing = [str(source / rel) for rel in REQUIRED if not (source / rel).is_file()]
    if missing:
        raise SourceError("required file(s) missing: " + ", ".join(missing))


def read_csv(source: Path, rel: Path) -> Iterator[dict[str, str]]:
    path = source / rel
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        absent = [c for c in REQUIRED[rel] if c not in (reader.fieldnames or [])]
        if absent:
            raise SourceError(f"{path}: missing column(s) {', '.join(absent)}")
        yield from reader


def match_tmdb(
    movies: dict[int, dict], links: dict[int, int | None], tmdb: dict[int, dict]
) -> tuple[dict[int, int], dict[str, int]]:
    """Map movieId -> TMDB id: by links.csv tmdbId first, then by normalised title + year.

    ``movies`` values need ``title``, ``aka`` and ``year``.  A TMDB row already linked by id is
    never reused by the fallback, and a fallback candidate claimed by two MovieLens movies (or a
    title+year that fits two TMDB rows) is left unmatched rather than guessed.

    The year ±1 pass only runs for movies links.csv gives no tmdbId at all: when it names a
    TMDB id that is simply not among the 5000, a same-title film a year off is almost always a
    different film (in this data "The Love Letter" 1999 -> the 1998 TV film, "Eden" 2014 -> the
    2015 survival film), while exact-year matches there are duplicate TMDB entries.
    """
    matched: dict[int, int] = {}
    for mid in sorted(movies):
        tid = links.get(mid)
        if tid is not None and tid in tmdb:
            matched[mid] = tid
    by_id = len(matched)
    linked = set(matched.values())

    exact: dict[tuple[str, int], set[int]] = defaultdict(set)
    by_name: dict[str, set[int]] = defaultdict(set)  # over all TMDB rows: title uniqueness
    for tid, row in tmdb.items():
        names = {normalize_for_match(row["title"]), normalize_for_match(row["original_title"])}
        names.discard("")
        for name in names:
            by_name[name].add(tid)
            if row["year"] is not None and tid not in linked:
                exact[(name, row["year"])].add(tid)

    def names_of(movie: dict) -> list[str]:
        keys = [normalize_for_match(t) for t in (movie["title"], *movie["aka"])]
        return sorted({k for k in keys if k})

    def settle(claims: dict[int, int]) -> dict[int, int]:
        owners = Counter(claims.values())
        return {mid: tid for mid, tid in claims.items() if owners[tid] == 1}

    pending = [m for m in sorted(movies) if m not in matched and movies[m]["year"] is not None]

    claims: dict[int, int] = {}
    for mid in pending:
        year = movies[mid]["year"]
        found = set().union(*(exact.get((n, year), set()) for n in names_of(movies[mid])))
        if len(found) == 1:
            claims[mid] = found.pop()
    exact_claims = settle(claims)

    used = linked | set(exact_claims.values())
    claims = {}
    for mid in pending:
        if mid in exact_claims or links.get(mid) is not None:
            continue
        year = movies[mid]["year"]
        found: set[int] = set()
        for name in names_of(movies[mid]):
            rows = by_name.get(name, set())
            if len(rows) != 1:
                continue
            (tid,) = rows
            if tid not in used and tmdb[tid]["year"] in (year - 1, year + 1):
                found.add(tid)
        if len(found) == 1:
            claims[mid] = found.pop()
    near_claims = settle(claims)

    matched.update(exact_claims)
    matched.update(near_claims)
    return matched, {
        "tmdb_by_id": by_id,
        "tmdb_by_title_year": len(exact_claims) + len(near_claims),
        "tmdb_by_title_year_pm1": len(near_claims),
    }


# --------------------------------------------------------------------------- build


def build_records(source: Path) -> tuple[list[dict], dict[str, int]]:
    """Read every source file and return the catalogue lines (as dicts) and the counts."""
    source = Path(source)
    check_source(source)
    ml = Path(MOVIELENS_DIR)

    movies: dict[int, dict] = {}
    for row in read_csv(source, ml / "movies.csv"):
        title, aka, year = parse_title(row["title"])
        movies[int(row["movieId"])] = {
            "title": title, "aka": aka, "year": year, "genres": parse_genres(row["genres"])
        }

    links: dict[int, int | None] = {}
    imdb: dict[int, str | None] = {}
    for row in read_csv(source, ml / "links.csv"):
        mid = int(row["movieId"])
        links[mid] = _int_or_none(row["tmdbId"])
        imdb[mid] = imdb_id(row["imdbId"])

    tags: dict[int, list[str]] = defaultdict(list)
    for row in read_csv(source, ml / "tags.csv"):
        tags[int(row["movieId"])].append(row["tag"])

    ratings: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for row in read_csv(source, ml / "ratings.csv"):
        ratings[int(row["movieId"])].append((float(row["rating"]), int(row["timestamp"])))
    # The data set's own "now", so the file does not depend on the day it is built.
    now = max((ts for rs in ratings.values() for _, ts in rs), default=0)
    recent_from = now - RECENT_WINDOW_SECONDS

    tmdb: dict[int, dict] = {}
    for row in read_csv(source, TMDB_FILE):
        tid = _int_or_none(row["id"])
        if tid is None:
            continue
        tmdb[tid] = {
            "title": row["title"],
            "original_title": row["original_title"],
            "year": _tmdb_year(row["release_date"]),
            "overview": row["overview"].strip(),
            "keywords": _keyword_names(row["keywords"]),
            "popularity": _float_or_none(row["popularity"]),
            "vote_average": _float_or_none(row["vote_average"]),
            "vote_count": _int_or_none(row["vote_count"]),
        }

    matched, counts = match_tmdb(movies, links, tmdb)

    records = []
    for mid in sorted(movies):
        movie = movies[mid]
        tid = matched.get(mid)
        tm = tmdb[tid] if tid is not None else None
        overview = tm["overview"] if tm else ""
        rs = ratings.get(mid, [])
        timestamps = [ts for _, ts in rs]
        record = {
            "id": str(mid),
            "title": movie["title"],
            "aka": movie["aka"],
            "year": movie["year"],
            "genres": movie["genres"],
            "tags": order_tags(tags.get(mid, [])),
            "keywords": tm["keywords"] if tm else [],
            "overview": overview,
            "text": build_text(movie["title"], movie["year"], overview),
            "tmdb_id": tid,
            "imdb_id": imdb.get(mid),
            "n_ratings": len(rs),
            "mean_rating": round(sum(r for r, _ in rs) / len(rs), 3) if rs else None,
            "recent_ratings": sum(1 for ts in timestamps if ts >= recent_from),
            "last_rated": iso_date(max(timestamps)) if timestamps else None,
            "tmdb_popularity": tm["popularity"] if tm else None,
            "tmdb_vote_average": tm["vote_average"] if tm else None,
            "tmdb_vote_count": tm["vote_count"] if tm else None,
        }
        assert tuple(record) == FIELDS
        records.append(record)

    counts = {
        "movies": len(records),
        **counts,
        "tmdb_matched": len(matched),
        "with_tags": sum(1 for r in records if r["tags"]),
        "with_ratings": sum(1 for r in records if r["n_ratings"]),
        "without_year": sum(1 for r in records if r["year"] is None),
    }
    return records, counts


def write_jsonl_atomic(records: Iterable[dict], out: Path) -> None:
    """One JSON object per line, written atomically."""
    with atomic_output(out) as raw:
        for record in records:
            raw.write(json.dumps(record, ensure_ascii=False, sort_keys=False).encode("utf-8"))
            raw.write(b"\n")


def build(source: Path, out: Path) -> dict:
    """Build ``out`` (JSON lines) from the raw data sets in ``source``; return the counts."""
    records, counts = build_records(Path(source))
    write_jsonl_atomic(records, Path(out))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatrec.builders.movielens",
        description="Build data/movies.jsonl from MovieLens latest-small and TMDB 5000.",
    )
    parser.add_argument(
        "--source", type=Path, default=Path("..") / "shared" / "data",
        help="folder holding movielens-ml-latest-small/ and tmdb-5000/ (default: ../shared/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("data") / "movies.jsonl",
        help="output JSON-lines file (default: data/movies.jsonl)",
    )
    args = parser.parse_args(argv)
    try:
        counts = build(args.source, args.out)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    print(f"  movies:                 {counts['movies']}")
    print(
        f"  TMDB matched:           {counts['tmdb_matched']}"
        f" (by id {counts['tmdb_by_id']}, by title+year {counts['tmdb_by_title_year']},"
        f" of which year ±1: {counts['tmdb_by_title_year_pm1']})"
    )
    print(f"  with user tags:         {counts['with_tags']}")
    print(f"  with ratings:           {counts['with_ratings']}")
    print(f"  without a year:         {counts['without_year']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
