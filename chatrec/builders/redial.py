"""Build ``data/redial/co_mentions.csv.gz``: which movies each ReDial conversation names.

Usage::

    python -m chatrec.builders.redial --source ../shared/data --out data/redial/co_mentions.csv.gz

One row per (conversation, movie) named by either side, from ``train_500.jsonl``, ``valid_100.jsonl`` and
``extra_801.jsonl`` (the 1,401 conversations of ReDial's training split we have), columns ``conversationId,movieId``, sorted numerically,
gzip with mtime 0: byte-reproducible. It is an interaction log (each conversation one "user") for the
collaborative part of B on the ReDial catalogue; evaluations drop the rows of the conversations they score.
Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import re
import sys
from pathlib import Path

from chatrec.builders import SourceError, atomic_output

FILES = ("train_500.jsonl", "valid_100.jsonl", "extra_801.jsonl")
MENTION = re.compile(r"@(\d+)")


def rows(source: Path) -> list[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for name in FILES:
        path = source / "redial" / name
        if not path.is_file():
            raise SourceError(f"missing source file: {path}")
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    conv = json.loads(line)
                    mentions, messages, cid = conv["movieMentions"], conv["messages"], int(conv["conversationId"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(f"{path}:{n}: not a ReDial conversation ({exc})") from None
                for msg in messages:
                    for movie in MENTION.findall(msg.get("text", "")):
                        if mentions.get(movie):
                            out.add((cid, int(movie)))
    return sorted(out)


def build(source: Path, out: Path) -> int:
    data = rows(source)
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["conversationId", "movieId"])
    writer.writerows(data)
    payload = gzip.compress(text.getvalue().encode("utf-8"), mtime=0)
    with atomic_output(out) as fh:
        fh.write(payload)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build data/redial/co_mentions.csv.gz from the ReDial conversations.")
    parser.add_argument("--source", type=Path, default=Path("..") / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("data") / "redial" / "co_mentions.csv.gz")
    args = parser.parse_args(argv)
    try:
        n = build(args.source, args.out)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {n} (conversation, movie) rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
