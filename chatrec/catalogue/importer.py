"""Reading a catalogue file (CSV or JSONL) into :class:`chatrec.core.items.Item` objects.

A catalogue is any file with one item per row and at least ``id`` and ``title``; ``text`` and
``tags`` feed the embedding and the content match. Movies add ``year``, ``genres``, ``keywords``,
``directors``, ``cast``, ``runtime`` and rating statistics, but nothing here is movie-specific:
products, articles, courses or music import the same way, with a column mapping for other names
(``--map text=description``, ``--map directors=author``, ``--map cast=artist``). The people roles also
take their everyday names: ``author``, ``artist``, ``brand``, ``creator`` and ``maker`` map to
``directors`` (the item's makers), ``performers`` and ``actors`` to ``cast``.

The whole file is parsed and validated before anything is written, so a malformed file
never touches an existing index.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from chatrec.core.items import Item

#: Canonical field names a column mapping can point at.
FIELDS = (
    "id", "title", "text", "tags", "year", "genres", "keywords", "aka", "directors", "cast", "runtime",
    "n_ratings", "mean_rating", "recent_ratings", "popularity",
)
#: everyday names of the people roles, usable on either side of --map ("--map author=writer_name")
ROLE_ALIASES = {"author": "directors", "authors": "directors", "artist": "directors", "artists": "directors",
                "brand": "directors", "creator": "directors", "creators": "directors", "maker": "directors",
                "director": "directors", "performers": "cast", "actors": "cast", "starring": "cast"}
LIST_FIELDS = ("tags", "genres", "keywords", "aka", "directors", "cast")
REQUIRED = ("id", "title")
MAX_TEXT = 20_000  # characters kept per item; longer text is cut, never rejected


class CatalogError(ValueError):
    """A catalogue file that cannot be read; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["text=description", "tags=labels"]`` → ``{"text": "description", "tags": "labels"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field_name, sep, column = pair.partition("=")
        field_name, column = field_name.strip(), column.strip()
        if not sep or not field_name or not column:
            raise ValueError(f"column mapping {pair!r} must look like FIELD=COLUMN, e.g. text=description")
        field_name = ROLE_ALIASES.get(field_name, field_name)
        if field_name not in FIELDS:
            known = ", ".join([*FIELDS, *ROLE_ALIASES])
            raise ValueError(f"column mapping {pair!r}: unknown field {field_name!r}; known: {known}")
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
        if name in mapping:
            return row.get(mapping[name])
        if name in row:
            return row.get(name)
        # a file that calls its makers "author" or "brand" needs no mapping
        return next((row[a] for a, f in ROLE_ALIASES.items() if f == name and a in row), None)

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
        runtime = _opt_number(get("runtime"), int)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: "year": Infinity, 1e400-sized ints
        raise ValueError(f"bad number: {exc}") from None
    try:
        tags, genres, keywords, aka, directors, cast = (_split_list(get(n)) for n in LIST_FIELDS)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return Item(
        id=str(ident).strip(), title=str(title).strip(), text=(text or "").strip()[:MAX_TEXT],
        tags=tags, year=year, genres=genres, keywords=keywords, n_ratings=n_ratings,
        mean_rating=mean_rating, recent_ratings=recent, popularity=popularity, aka=aka,
        directors=directors, cast=cast, runtime=runtime if runtime and runtime > 0 else None,
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
