"""Build the default catalogue ``data/movies.jsonl`` from MovieLens latest-small and TMDB data.

TMDB 5000 gives overviews, keywords and popularity; "TMDb movie data" (tmdb-10k) and a
third-party TMDB enrichment of MovieLens (tmdb-ml-enriched) give directors, cast and runtime,
and the overview and keywords of the films TMDB 5000 lacks.

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
TMDB10K_FILE = Path("tmdb-10k") / "tmdb-movies.csv"
ENRICHED_FILE = Path("tmdb-ml-enriched") / "movies_enriched.csv"

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
    TMDB10K_FILE: ("id", "imdb_id", "cast", "director", "keywords", "overview", "runtime"),
    ENRICHED_FILE: ("movie_id", "tmdb_id", "director", "cast_top3", "runtime", "overview"),
}

#: Keys of every output line, in output order.
FIELDS = (
    "id", "title", "aka", "year", "genres", "tags", "keywords",
    "directors", "cast", "runtime",
    "overview", "text",
    "tmdb_id", "imdb_id", "n_ratings", "mean_rating", "recent_ratings", "last_rated",
    "tmdb_popularity", "tmdb_vote_average", "tmdb_vote_count",
)

NO_GENRES = "(no genres listed)"
RECENT_WINDOW_SECONDS = 365 * 24 * 60 * 60
MAX_CAST = 5
# Longer than a day is a data error, not a film (the longest real entries, miniseries and
# "The Story of Film: An Odyssey", run up to 900 minutes).
MAX_RUNTIME = 24 * 60

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
        except (ValueError, OverflowError):  # "nan", "inf"
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


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as cp1252: "LÃ©a Seydoux" -> "Léa Seydoux".

    The text comes back unchanged when the round trip fails: a byte cp1252 has no character
    for was lost ("ToshirÅ Mifune"), or the text was never mangled (a correct "Léa" is not
    valid UTF-8 once encoded as cp1252).
    """
    if text.isascii():
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return text


def fix_mojibake_runs(text: str) -> str:
    """``fix_mojibake`` applied to each run of non-ASCII characters of a free text.

    UTF-8 sequences hold no ASCII bytes, so every run can be repaired on its own: one lost byte
    (mostly the closing quote of "â€œcaptureâ€") then spoils only its run, not a whole overview.
    """
    return _NON_ASCII_RUN.sub(lambda m: fix_mojibake(m.group()), text)


def parse_pipe_list(raw: str, repair: bool = False) -> list[str]:
    """Split "|"-separated names or keywords: stripped, empty ones dropped, de-duplicated in order.

    With ``repair`` each entry goes through ``fix_mojibake`` before it is stripped: a mangled
    "à" is "Ã" plus a no-break space ("Jordi MollÃ\\xa0"), which ``strip()`` would eat.
    """
    items: list[str] = []
    for item in raw.split("|"):
        item = (fix_mojibake(item) if repair else item).strip()
        if item and item not in items:
            items.append(item)
    return items


def parse_runtime(raw: str) -> int | None:
    """Runtime in whole minutes; None when missing, not positive (TMDB's 0 = unknown) or absurd."""
    minutes = _int_or_none(raw)
    return minutes if minutes is not None and 0 < minutes <= MAX_RUNTIME else None


def trusted_enriched(row_tmdb_id: str, link_tmdb_id: int | None) -> bool:
    """Whether a tmdb-ml-enriched row describes the film that links.csv names.

    Its maker found TMDB films by title search, which sometimes picked another film (a remake,
    a namesake); a row counts only when its tmdb_id is the movie's links.csv tmdbId.
    """
    tid = _int_or_none(row_tmdb_id)
    return tid is not None and tid == link_tmdb_id


def first_by_id(rows: Iterable[tuple[int, dict]]) -> tuple[dict[int, dict], list[int]]:
    """Keep the first row of each id, in input order; also return the ids seen more than once.

    tmdb-10k lists id 42194 (TEKKEN, 2010) twice, in two identical rows; the first one wins,
    so the result stays fixed even if the copies ever differ.
    """
    kept: dict[int, dict] = {}
    repeated: list[int] = []
    for tid, row in rows:
        if tid in kept:
            if tid not in repeated:
                repeated.append(tid)
            continue
        kept[tid] = row
    return kept, repeated


def pick_sources(
    t10: dict | None, enriched: dict | None
) -> dict[str, tuple[object, str | None]]:
    """Each of directors, cast, runtime and overview from the first source that has a value.

    tmdb-10k comes first (five billed actors, every director), then the enrichment (three
    actors, the first director).  The choice is made per field, so an empty tmdb-10k cast still
    gets the enrichment's, but lists are never merged across sources.  Returns key ->
    (value or None, "tmdb10k" / "enriched" / None).
    """
    picked: dict[str, tuple[object, str | None]] = {}
    for key in ("directors", "cast", "runtime", "overview"):
        picked[key] = (None, None)
        for name, row in (("tmdb10k", t10), ("enriched", enriched)):
            if row is not None and row[key] not in (None, "", []):
                picked[key] = (row[key], name)
                break
    return picked


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
    # utf-8-sig: movies_enriched.csv starts with a byte-order mark; the others read the same.
    with path.open(newline="", encoding="utf-8-sig") as fh:
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


def match_tmdb10k(
    movies: Iterable[int],
    links: dict[int, int | None],
    imdb: dict[int, str | None],
    rows: dict[int, dict],
) -> tuple[dict[int, int], dict[str, int]]:
    """Map movieId -> tmdb-10k id: by links.csv tmdbId first, then by IMDb id.

    The IMDb id is used only for movies whose tmdbId is missing or not among the tmdb-10k rows,
    and only when it is unambiguous: it names exactly one row, that row is not linked by tmdbId
    to another movie, and no other movie claims it.  (In this data these are the same film
    filed in TMDB under two ids, e.g. "Grindhouse" 2007.)
    """
    movies = sorted(movies)
    matched = {mid: links[mid] for mid in movies if links.get(mid) in rows}
    by_id = len(matched)
    taken = set(matched.values())

    by_imdb: dict[str, set[int]] = defaultdict(set)
    for tid, row in rows.items():
        if row["imdb_id"]:
            by_imdb[row["imdb_id"]].add(tid)
    claims: dict[int, int] = {}
    for mid in movies:
        found = by_imdb.get(imdb.get(mid) or "", set())
        if mid not in matched and len(found) == 1 and not found & taken:
            claims[mid] = next(iter(found))
    owners = Counter(claims.values())
    matched.update({mid: tid for mid, tid in claims.items() if owners[tid] == 1})
    return matched, {"tmdb10k_by_id": by_id, "tmdb10k_by_imdb": len(matched) - by_id}


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

    def read_tmdb10k() -> Iterator[tuple[int, dict]]:
        for row in read_csv(source, TMDB10K_FILE):
            tid = _int_or_none(row["id"])
            if tid is None:
                continue
            # Names are repaired one by one: repairing a whole field would fail, and keep every
            # name in it mangled, as soon as one name lost a byte ("Phylicia RashÄd").
            parts = f"{row['director']}|{row['cast']}".split("|")
            repaired = {fix_mojibake(p).strip() for p in parts if fix_mojibake(p) != p}
            kept = {p.strip() for p in parts if not p.isascii() and fix_mojibake(p) == p}
            yield tid, {
                "imdb_id": row["imdb_id"].strip() or None,
                "directors": parse_pipe_list(row["director"], repair=True),
                "cast": parse_pipe_list(row["cast"], repair=True)[:MAX_CAST],
                "runtime": parse_runtime(row["runtime"]),
                "overview": collapse_ws(fix_mojibake_runs(row["overview"])),
                "keywords": parse_pipe_list(row["keywords"], repair=True),
                "repaired": repaired,
                "kept": kept,
            }

    tmdb10k, repeated_ids = first_by_id(read_tmdb10k())
    matched10k, counts10k = match_tmdb10k(movies, links, imdb, tmdb10k)

    enriched: dict[int, dict] = {}
    untrusted = 0
    for row in read_csv(source, ENRICHED_FILE):
        mid = _int_or_none(row["movie_id"])
        if mid not in movies or not row["tmdb_id"].strip():
            continue
        if not trusted_enriched(row["tmdb_id"], links.get(mid)):
            untrusted += 1
            continue
        enriched[mid] = {
            "directors": parse_pipe_list(row["director"]),
            "cast": parse_pipe_list(row["cast_top3"])[:MAX_CAST],
            "runtime": parse_runtime(row["runtime"]),
            "overview": collapse_ws(row["overview"]),
        }

    source_of: dict[str, Counter] = defaultdict(Counter)
    names_repaired = names_kept = 0

    records = []
    for mid in sorted(movies):
        movie = movies[mid]
        tid = matched.get(mid)
        tm = tmdb[tid] if tid is not None else None
        t10 = tmdb10k[matched10k[mid]] if mid in matched10k else None
        picked = pick_sources(t10, enriched.get(mid))
        for key, (value, src) in picked.items():
            if src is None or (key == "overview" and tm):
                continue
            source_of[key][src] += 1
            if src == "enriched" and t10 is not None:
                source_of[key]["enriched_over_empty_tmdb10k"] += 1
            if src == "tmdb10k" and key in ("directors", "cast"):
                names_repaired += sum(1 for n in value if n in t10["repaired"])
                names_kept += sum(1 for n in value if n in t10["kept"])

        if tm:  # TMDB 5000 keeps priority for the text fields where it matched
            overview, keywords = tm["overview"], tm["keywords"]
        else:
            overview = picked["overview"][0] or ""
            keywords = t10["keywords"] if t10 else []
            source_of["keywords"]["tmdb10k"] += bool(keywords)
        rs = ratings.get(mid, [])
        timestamps = [ts for _, ts in rs]
        record = {
            "id": str(mid),
            "title": movie["title"],
            "aka": movie["aka"],
            "year": movie["year"],
            "genres": movie["genres"],
            "tags": order_tags(tags.get(mid, [])),
            "keywords": keywords,
            "directors": picked["directors"][0] or [],
            "cast": picked["cast"][0] or [],
            "runtime": picked["runtime"][0],
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
        **counts10k,
        "tmdb10k_matched": len(matched10k),
        "tmdb10k_repeated_ids": len(repeated_ids),
        "enriched_trusted": len(enriched),
        "enriched_untrusted": untrusted,
        "with_directors": sum(1 for r in records if r["directors"]),
        "with_several_directors": sum(1 for r in records if len(r["directors"]) > 1),
        "with_cast": sum(1 for r in records if r["cast"]),
        "with_directors_and_cast": sum(1 for r in records if r["directors"] and r["cast"]),
        "with_runtime": sum(1 for r in records if r["runtime"] is not None),
        "directors_from_enriched": source_of["directors"]["enriched"],
        "cast_from_enriched": source_of["cast"]["enriched"],
        "runtime_from_enriched": source_of["runtime"]["enriched"],
        "directors_enriched_over_empty_tmdb10k": source_of["directors"]["enriched_over_empty_tmdb10k"],
        "cast_enriched_over_empty_tmdb10k": source_of["cast"]["enriched_over_empty_tmdb10k"],
        "runtime_enriched_over_empty_tmdb10k": source_of["runtime"]["enriched_over_empty_tmdb10k"],
        "overview_from_tmdb10k": source_of["overview"]["tmdb10k"],
        "overview_from_enriched": source_of["overview"]["enriched"],
        "keywords_from_tmdb10k": source_of["keywords"]["tmdb10k"],
        "names_repaired": names_repaired,
        "names_unrepaired": names_kept,
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
        description="Build data/movies.jsonl from MovieLens latest-small and TMDB data.",
    )
    parser.add_argument(
        "--source", type=Path, default=Path("..") / "shared" / "data",
        help="folder holding movielens-ml-latest-small/, tmdb-5000/, tmdb-10k/ and tmdb-ml-enriched/"
        " (default: ../shared/data)",
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
    print(
        f"  tmdb-10k matched:       {counts['tmdb10k_matched']}"
        f" (by id {counts['tmdb10k_by_id']}, by IMDb id {counts['tmdb10k_by_imdb']};"
        f" repeated ids dropped: {counts['tmdb10k_repeated_ids']})"
    )
    print(
        f"  enriched rows trusted:  {counts['enriched_trusted']}"
        f" (ignored, tmdb_id not the links.csv one: {counts['enriched_untrusted']})"
    )
    print(
        f"  with directors:         {counts['with_directors']}"
        f" (from enriched {counts['directors_from_enriched']}, of which tmdb-10k empty:"
        f" {counts['directors_enriched_over_empty_tmdb10k']}; several: {counts['with_several_directors']})"
    )
    print(
        f"  with cast:              {counts['with_cast']}"
        f" (from enriched {counts['cast_from_enriched']}, of which tmdb-10k empty:"
        f" {counts['cast_enriched_over_empty_tmdb10k']})"
    )
    print(f"  with both of them:      {counts['with_directors_and_cast']}")
    print(
        f"  with runtime:           {counts['with_runtime']}"
        f" (from enriched {counts['runtime_from_enriched']}, of which tmdb-10k empty:"
        f" {counts['runtime_enriched_over_empty_tmdb10k']})"
    )
    print(
        f"  overview added:         {counts['overview_from_tmdb10k'] + counts['overview_from_enriched']}"
        f" (from tmdb-10k {counts['overview_from_tmdb10k']}, from enriched {counts['overview_from_enriched']});"
        f" keywords added: {counts['keywords_from_tmdb10k']}"
    )
    print(
        f"  names repaired:         {counts['names_repaired']}"
        f" (left as they were, unrepairable: {counts['names_unrepaired']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
