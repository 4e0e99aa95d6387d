"""The ``chatrec`` command line. Thin: parse, call the recommender, render.

Heavy libraries (torch, sentence-transformers, chromadb) load only when a command needs them,
so ``chatrec --help`` and error paths stay fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="chatrec",
    help="An offline conversational recommender. Start with `chatrec recommend \"something funny\"`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


class UserError(Exception):
    """Shown as one line on stderr with exit code 2: never a traceback."""


def _settings():
    from pydantic import ValidationError

    from chatrec.settings import Settings, check_environment

    try:
        check_environment()
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CHATREC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"invalid setting: {problems}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _progress(label: str, quiet: bool = False):
    """A rich progress bar on stderr, driven by (done, total) callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if quiet:
        return None, lambda done, total: None
    progress = Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=False
    )
    task = progress.add_task(label, total=None)
    started = {"on": False}

    def update(done: int, total: int) -> None:
        if total == 0:
            return
        if not started["on"]:
            progress.start()
            started["on"] = True
        progress.update(task, completed=done, total=total)
        if done >= total:
            progress.stop()

    return progress, update


def _recommender(settings, collection: str | None = None):
    from chatrec.recommender import Recommender

    return Recommender(settings, collection=collection)


@app.command()
def index(
    path: Annotated[Optional[Path], typer.Argument(help="CSV or JSONL catalogue; default: the bundled movies.")] = None,
    map_: Annotated[
        list[str], typer.Option("--map", help="Column mapping FIELD=COLUMN, e.g. text=description (repeatable).")
    ] = [],
    collection: Annotated[Optional[str], typer.Option(help="Collection name; default: the file's stem.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Drop the collection and embed everything again.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Build or update the item index (incremental: unchanged items are not embedded again)."""
    from chatrec.catalog import parse_mapping
    from chatrec.recommender import collection_for

    settings = _settings()
    path = path or settings.catalog
    try:
        mapping = parse_mapping(map_)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    rec = _recommender(settings, collection or collection_for(path))
    _, update = _progress(f"Indexing {path.name}")
    report = rec.index_file(path, mapping, rebuild=rebuild, progress=update)
    data = {
        "collection": report.collection, "total": report.total, "embedded": report.embedded,
        "unchanged": report.unchanged, "deleted": report.deleted, "seconds": round(report.seconds, 3),
        "items_per_second": None if report.embedded == 0 else round(report.items_per_second, 1),
    }
    if json_:
        out.print_json(json.dumps(data))
    else:
        rate = f", {data['items_per_second']} items/s embedding" if report.embedded else ""
        out.print(
            f"Indexed {report.total} items into '{report.collection}': {report.embedded} embedded, "
            f"{report.unchanged} unchanged, {report.deleted} removed in {report.seconds:.2f}s{rate}."
        )


@app.command()
def recommend(
    text: Annotated[str, typer.Argument(help="What you feel like; empty for popular picks.")] = "",
    like_tag: Annotated[list[str], typer.Option("--like-tag", help="A tag or genre you like (repeatable).")] = [],
    dislike_tag: Annotated[
        list[str], typer.Option("--dislike-tag", help="A tag or genre to push down (repeatable).")
    ] = [],
    k: Annotated[int, typer.Option("--k", min=1, max=200, help="How many picks.")] = 10,
    filter_disliked: Annotated[
        Optional[bool], typer.Option("--filter-disliked/--no-filter-disliked", help="Drop disliked-tag items outright.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rank the catalogue for TEXT and tag preferences, without an LLM."""
    from rich.markup import escape

    from chatrec.recommender import Query

    settings = _settings()
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    built = rec.ensure_index(progress=update)
    if built is not None and not json_:
        err.print(f"Built the index: {built.total} items in {built.seconds:.1f}s.")
    liked, unknown_like = rec.resolve_tags(like_tag)
    disliked, unknown_dislike = rec.resolve_tags(dislike_tag)
    warnings = []
    for tag, close in {**unknown_like, **unknown_dislike}.items():
        hint = f"; closest known: {', '.join(close)}" if close else ""
        warnings.append(f"unknown tag {tag!r}{hint}")
    query = Query(text=text, liked_tags=liked, disliked_tags=disliked)
    result = rec.recommend(query, k=k, filter_disliked=filter_disliked, unknown_like=list(unknown_like))
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}")
    if json_:
        payload = {"items": [r.to_json() for r in result.items], "cold_start": result.cold_start, "warnings": warnings}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    if result.cold_start:
        out.print("No preference known yet: here are popular, well-rated picks. Tell me what you like!")
    for n, r in enumerate(result.items, 1):
        b = r.breakdown
        tags = escape(", ".join(r.item.all_tags[:4]))
        why = escape(f" — matches {', '.join(b.matched_tags)}") if b.matched_tags else ""
        pen = escape(f" −{b.penalty:.2f} ({', '.join(b.disliked_tags)})") if b.penalty else ""
        out.print(
            f"{n:>2}. {escape(r.item.display_title)}  [dim]{r.score:.3f} = S {b.similarity:.2f} · B {b.behaviour:.2f}"
            f" · C {b.content:.2f}{pen}[/]  [cyan]{tags}[/]{why}"
        )


@app.command("build-catalog")
def build_catalog(
    source: Annotated[Path, typer.Option(help="The shared data folder.")] = Path("../shared/data"),
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the catalogue.")] = Path("data/movies.jsonl"),
) -> None:
    """Rebuild the bundled movie catalogue from MovieLens + TMDB (reproducible)."""
    from chatrec.builders.movielens import SourceError, build

    try:
        counts = build(source, out_path)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    out.print(json.dumps(counts, indent=2))


@app.command()
def bench(
    n: Annotated[int, typer.Option(min=5, help="Queries per measurement.")] = 200,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print speed figures (percentiles over many calls, in one process, with the floors beside them)."""
    from chatrec.bench import run_bench

    settings = _settings()
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    rec.ensure_index(progress=update)
    figures = run_bench(rec, n=n)
    if json_:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            out.print(f"{key:40} {value}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: configure logging once and turn known errors into one clear line."""
    from chatrec.catalog import CatalogError
    from chatrec.embed import EmbedderError
    from chatrec.store import StoreError

    level = os.environ.get("CHATREC_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except (UserError, CatalogError, StoreError, EmbedderError) as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click's own usage errors come here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            err.print("aborted")
            return 1
        if isinstance(exc, OSError):
            err.print(f"[bold red]error:[/] {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}")
            return 1
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc}")
        if level == "DEBUG":
            raise
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
