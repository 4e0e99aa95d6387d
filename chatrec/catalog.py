"""Catalogue items and their import from CSV or JSONL.

A catalogue is any file with one item per row and at least ``id`` and ``title``; ``text`` and
``tags`` feed the embedding and the content match. Movies add ``year``, ``genres``, ``keywords``
and rating statistics, but nothing here is movie-specific: products, articles, courses or music
import the same way, with a column mapping for other names (``--map text=description``).

The whole file is parsed and validated before anything is written, so a malformed file
never touches an existing index.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Canonical field names a column mapping can point at.
FIELDS = (
    "id", "title", "text", "tags", "year", "genres", "keywords", "aka",
    "n_ratings", "mean_rating", "recent_ratings", "popularity",
)
LIST_FIELDS = ("tags", "genres", "keywords", "aka")
REQUIRED = ("id", "title")
MAX_TEXT = 20_000  # characters kept per item; longer text is cut, never rejected


class CatalogError(ValueError):
    """A catalogue file that cannot be read; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def tag_key(tag: str) -> str:
    """The normalised form tags are matched on: lower-case, single spaces, no edge punctuation."""
    return re.sub(r"\s+", " ", tag.strip().lower()).strip(" .,;:!?\"'")


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    text: str = ""
    tags: tuple[str, ...] = ()
    year: int | None = None
    genres: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    n_ratings: int = 0
    mean_rating: float | None = None
    recent_ratings: int = 0
    popularity: float | None = None
    aka: tuple[str, ...] = ()  # alternative titles, for matching what people type
    extra: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def display_title(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Genres first, then user tags, then keywords, de-duplicated on their normalised key."""
        seen: set[str] = set()
        out: list[str] = []
        for t in (*self.genres, *self.tags, *self.keywords):
            k = tag_key(t)
            if k and k not in seen:
                seen.add(k)
                out.append(t)
        return tuple(out)

    @property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(tag_key(t) for t in self.all_tags if tag_key(t))

    def embedding_text(self) -> str:
        """What the embedder reads: title, genres, description, then tags and keywords.

        MiniLM reads ~256 word pieces, so the most telling fields come first.
        """
        parts = [self.display_title + "."]
        text = self.text
        if text.startswith(self.display_title):  # descriptions that repeat the title (our movies do)
            text = text[len(self.display_title):].lstrip(" .:-")
        if self.genres:
            parts.append(", ".join(self.genres) + ".")
        if text:
            parts.append(text)
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags[:12]) + ".")
        if self.keywords:
            parts.append("Keywords: " + ", ".join(self.keywords[:20]) + ".")
        return " ".join(parts)

    def content_hash(self) -> str:
        """A stable hash of everything indexed for this item: equal hash, nothing to re-embed."""
        payload = json.dumps(self.to_record(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def to_record(self) -> dict:
        rec = {
            "id": self.id, "title": self.title, "text": self.text, "tags": list(self.tags),
            "year": self.year, "genres": list(self.genres), "keywords": list(self.keywords),
            "n_ratings": self.n_ratings, "mean_rating": self.mean_rating,
            "recent_ratings": self.recent_ratings, "popularity": self.popularity,
        }
        if self.aka:
            rec["aka"] = list(self.aka)
        return rec

    @classmethod
    def from_record(cls, rec: Mapping) -> Item:
        return cls(
            id=str(rec["id"]), title=str(rec["title"]), text=rec.get("text") or "",
            tags=tuple(rec.get("tags") or ()), year=rec.get("year"),
            genres=tuple(rec.get("genres") or ()), keywords=tuple(rec.get("keywords") or ()),
            n_ratings=int(rec.get("n_ratings") or 0), mean_rating=rec.get("mean_rating"),
            recent_ratings=int(rec.get("recent_ratings") or 0), popularity=rec.get("popularity"),
            aka=tuple(rec.get("aka") or ()),
        )


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["text=description", "tags=labels"]`` → ``{"text": "description", "tags": "labels"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field_name, sep, column = pair.partition("=")
        field_name, column = field_name.strip(), column.strip()
        if not sep or not field_name or not column:
            raise ValueError(f"column mapping {pair!r} must look like FIELD=COLUMN, e.g. text=description")
        if field_name not in FIELDS:
            raise ValueError(f"column mapping {pair!r}: unknown field {field_name!r}; known: {', '.join(FIELDS)}")
        mapping[field_name] = column
    return mapping


def _split_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        sep = "|" if "|" in value else ("," if "," in value else ";")
        items = value.split(sep)
    else:
        raise TypeError(f"expected a list or a '|'/','-separated string, got {type(value).__name__}")
    out = []
    for v in items:
        if not isinstance(v, (str, int, float)):
            raise TypeError(f"list entries must be strings, got {type(v).__name__}")
        s = str(v).strip()
        if s:
            out.append(s)
    return tuple(out)


def _opt_number(value: object, kind: type) -> float | int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    number = kind(float(value)) if kind is int else kind(value)
    if isinstance(number, float) and number != number:  # NaN
        return None
    if isinstance(number, float) and number in (float("inf"), float("-inf")):
        # "Infinity" / "1e999" would poison every score computed from it
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _item_from_row(row: Mapping[str, object], mapping: Mapping[str, str]) -> Item:
    def get(name: str) -> object:
        return row.get(mapping.get(name, name))

    ident = get("id")
    title = get("title")
    if ident is None or str(ident).strip() == "":
        raise ValueError("missing id")
    if title is None or str(title).strip() == "":
        raise ValueError("missing title")
    text = get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    try:
        year = _opt_number(get("year"), int)
        n_ratings = _opt_number(get("n_ratings"), int) or 0
        mean_rating = _opt_number(get("mean_rating"), float)
        recent = _opt_number(get("recent_ratings"), int) or 0
        popularity = _opt_number(get("popularity"), float)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: "year": Infinity, 1e400-sized ints
        raise ValueError(f"bad number: {exc}") from None
    try:
        tags, genres, keywords, aka = (_split_list(get(n)) for n in LIST_FIELDS)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return Item(
        id=str(ident).strip(), title=str(title).strip(), text=(text or "").strip()[:MAX_TEXT],
        tags=tags, year=year, genres=genres, keywords=keywords, n_ratings=n_ratings,
        mean_rating=mean_rating, recent_ratings=recent, popularity=popularity, aka=aka,
    )


def _rows_jsonl(path: Path) -> Iterator[tuple[int, Mapping]]:
    with path.open("r", encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise CatalogError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            if "\\u" in line:  # a lone surrogate escape ("\ud800") parses, then breaks hashing and Chroma
                try:
                    json.dumps(obj, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise CatalogError(path, lineno, "invalid Unicode: an unpaired surrogate escape") from None
            yield lineno, obj


def _rows_csv(path: Path, mapping: Mapping[str, str]) -> Iterator[tuple[int, Mapping]]:
    with path.open("r", encoding="utf-8", newline="") as fh:
        sample = fh.read(8192)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect, strict=True)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:  # the header row itself is malformed (an unclosed quote, say)
            raise CatalogError(path, 1, f"malformed CSV header: {exc}") from None
        for name in REQUIRED:
            column = mapping.get(name, name)
            if column not in header:
                raise CatalogError(path, 1, f"no column {column!r} for {name!r} in the header {header}; "
                                   f"map one with --map {name}=COLUMN")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CatalogError(path, reader.line_num, f"malformed CSV: {exc}") from None
            if None in row:
                raise CatalogError(path, reader.line_num, f"more fields than the header's {len(header)}")
            if any(v is None for v in row.values()):
                raise CatalogError(path, reader.line_num, f"fewer fields than the header's {len(header)}")
            yield reader.line_num, row


def load_catalog(path: Path | str, mapping: Mapping[str, str] | None = None) -> list[Item]:
    """Read and validate a whole catalogue; raise :class:`CatalogError` naming file and line."""
    path = Path(path)
    mapping = dict(mapping or {})
    if not path.exists():
        raise CatalogError(path, None, "file not found")
    if path.is_dir():
        raise CatalogError(path, None, "is a folder, expected a .csv or .jsonl file")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = _rows_jsonl(path)
    elif suffix in (".csv", ".tsv"):
        rows = _rows_csv(path, mapping)
    else:
        raise CatalogError(path, None, f"unknown file type {suffix or '(none)'}; use .csv or .jsonl")
    items: list[Item] = []
    first_line: dict[str, int] = {}
    try:
        for lineno, row in rows:
            try:
                item = _item_from_row(row, mapping)
            except ValueError as exc:
                raise CatalogError(path, lineno, str(exc)) from None
            if item.id in first_line:
                raise CatalogError(path, lineno, f"duplicate id {item.id!r} (first seen on line {first_line[item.id]})")
            first_line[item.id] = lineno
            items.append(item)
    except UnicodeDecodeError as exc:
        raise CatalogError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not items:
        raise CatalogError(path, None, "no items in the file")
    return items


def tag_vocabulary(items: Iterable[Item]) -> dict[str, str]:
    """Normalised tag key → its most common display form, across the catalogue."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        for t in item.all_tags:
            k = tag_key(t)
            if k:
                forms = counts.setdefault(k, {})
                forms[t] = forms.get(t, 0) + 1
    return {k: max(forms.items(), key=lambda kv: (kv[1], kv[0]))[0] for k, forms in counts.items()}
