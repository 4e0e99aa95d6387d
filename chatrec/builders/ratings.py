"""Build ``data/ratings.csv.gz``: MovieLens latest-small ratings for the leave-last-out eval.

Usage::

    python -m chatrec.builders.ratings --source ../shared/data --out data/ratings.csv.gz

Same four columns as ``ratings.csv`` (values copied verbatim), LF line endings, rows sorted by
(userId, timestamp, movieId) numerically, gzip with mtime 0 and no file name in the header, so
the same input always gives the same bytes.  Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path

from chatrec.builders import SourceError, atomic_output

RATINGS = Path("movielens-ml-latest-small") / "ratings.csv"
COLUMNS = ("userId", "movieId", "rating", "timestamp")


def read_rows(path: Path) -> list[tuple[str, str, str, str]]:
    if not path.is_file():
        raise SourceError(f"ratings file not found: {path}")
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:  # newline="" lets csv eat the CRLFs
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise SourceError(f"{path}:1: expected header {','.join(COLUMNS)}, got {header}")
        for line, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                user, movie, rating, ts = (v.strip() for v in row)
                int(user), int(movie), float(rating), int(ts)  # validate now, not at eval time
            except ValueError:
                raise SourceError(f"{path}:{line}: malformed row {row!r}") from None
            rows.append((user, movie, rating, ts))
    return rows


def write_gz_atomic(rows: list[tuple[str, ...]], out: Path) -> None:
    """Deterministic gzip CSV, written atomically."""
    with atomic_output(out) as raw:
        # filename="" keeps the temp file's name out of the gzip header; mtime=0 the clock.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write((",".join(COLUMNS) + "\n").encode())
            gz.write("".join(",".join(r) + "\n" for r in rows).encode())


def build(source: Path, out: Path) -> dict:
    rows = read_rows(Path(source) / RATINGS)
    rows.sort(key=lambda r: (int(r[0]), int(r[3]), int(r[1])))
    write_gz_atomic(rows, Path(out))
    return {"ratings": len(rows), "users": len({r[0] for r in rows}), "movies": len({r[1] for r in rows})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatrec.builders.ratings",
        description="Build data/ratings.csv.gz from MovieLens latest-small ratings.csv.",
    )
    parser.add_argument("--source", type=Path, default=Path("..") / "shared" / "data",
                        help="folder holding movielens-ml-latest-small/ (default: ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("data") / "ratings.csv.gz",
                        help="output gzip CSV (default: data/ratings.csv.gz)")
    args = parser.parse_args(argv)
    try:
        counts = build(args.source, args.out)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {counts['ratings']} ratings, {counts['users']} users, {counts['movies']} movies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
