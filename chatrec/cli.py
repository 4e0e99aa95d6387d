"""The ``chatrec`` command line. Thin: parse, call the recommender, render.

Heavy libraries (torch, sentence-transformers, chromadb) load only when a command needs them,
so ``chatrec --help`` and error paths stay fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
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
err = Console(stderr=True, highlight=False, soft_wrap=True)  # error lines must not be wrapped


_ROOT = Path(__file__).resolve().parent.parent


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
    explain: Annotated[bool, typer.Option("--explain", help="Explain the picks in words (streams).")] = False,
    llm: LLMChoice = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rank the catalogue for TEXT and tag preferences. The LLM is used only with --explain
    (and for extraction when CHATREC_EXTRACTOR asks for it); rules read TEXT either way."""
    from rich.markup import escape

    from chatrec.llm.explain import Explainer, reason
    from chatrec.llm.extract import build_extractor
    from chatrec.recommender import Query

    settings = _with_llm(_settings(), llm)
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    built = rec.ensure_index(progress=update)
    if built is not None and not json_:
        err.print(f"Built the index: {built.total} items in {built.seconds:.1f}s.")
    liked, unknown_like = rec.resolve_tags(like_tag)
    disliked, unknown_dislike = rec.resolve_tags(dislike_tag)
    from chatrec.engine import clean_message

    text, warnings = clean_message(text)  # same limits as a chat message (control chars, bad UTF-8, 1 MB)
    for tag, close in {**unknown_like, **unknown_dislike}.items():
        hint = f"; closest known: {', '.join(close)}" if close else ""
        warnings.append(f"unknown tag {tag!r}{hint}")
    uses_llm = explain or settings.extractor in ("llm", "union", "fill")
    backend = _backend(settings) if uses_llm and settings.llm != "none" else None
    extractor = build_extractor(settings, rec.catalogue, backend if settings.extractor != "rules" else None,
                                rec.store.embedder if text.strip() else None)
    prefs = extractor.extract(text) if text.strip() else None
    if prefs is not None:
        query = Query.from_preferences(prefs, text, liked, disliked)
        warnings.extend(n for n in prefs.notes if n.startswith("LLM unavailable"))
    else:
        query = Query(text=text, liked_tags=liked, disliked_tags=disliked)
    result = rec.recommend(query, k=k, filter_disliked=filter_disliked, unknown_like=list(unknown_like))
    for w in warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    explainer = Explainer(backend, extractor.rules.vocabulary.titles) if explain else None
    request = text or ", ".join(like_tag)
    if json_:
        payload = {"items": [r.to_json() for r in result.items], "cold_start": result.cold_start, "warnings": warnings}
        if explainer is not None:
            payload["explanation"] = explainer.explain(result.items, request)
            if explainer.last_fallback_reason:
                payload["explanation_fallback"] = explainer.last_fallback_reason
            if explainer.last_repairs:
                payload["explanation_corrections"] = [str(p) for p in explainer.last_repairs]
        if prefs is not None:
            payload["preferences"] = prefs.model_dump()
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    if result.cold_start:
        out.print("No preference known yet: here are popular, well-rated picks. Tell me what you like!")
    for n, r in enumerate(result.items, 1):
        b = r.breakdown
        tags = escape(", ".join(r.item.all_tags[:4]))
        pen = escape(f" −{b.penalty:.2f} ({', '.join(b.disliked_tags)})") if b.penalty else ""
        out.print(
            f"{n:>2}. {escape(r.item.display_title)} — {escape(reason(r))}  [dim]{r.score:.3f} = S {b.similarity:.2f}"
            f" · B {b.behaviour:.2f} · C {b.content:.2f}{pen}[/]  [cyan]{tags}[/]"
        )
    if explainer is not None and result.items:
        out.print()
        _stream_explanation(explainer, result.items, request)


def _stream_explanation(explainer, items, request: str) -> None:
    """Print tokens as they arrive; if the answer fails its check, say why and print what replaces it
    (the corrected answer, or the template)."""
    from rich.markup import escape

    streamed = False
    for chunk in explainer.stream(items, request):
        if chunk.kind == "token":
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            streamed = True
        else:
            if streamed:
                sys.stdout.write("\n")
                why = explainer.last_fallback_reason
                err.print(f"[yellow](explanation replaced: {escape(why)})[/]" if why else
                          f"[yellow](explanation corrected: {escape('; '.join(map(str, explainer.last_repairs)))})[/]")
            sys.stdout.write(chunk.text)
    sys.stdout.write("\n")


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
    llm: LLMChoice = None,
    llm_calls: Annotated[int, typer.Option(min=3, help="Calls per LLM measurement (with --llm).")] = 20,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print speed figures (percentiles over many calls, in one process, with the floors beside them).
    With --llm local|openai, also the LLM figures (extraction, first explanation token, whole --explain)."""
    from chatrec.bench import run_bench, run_chat_bench, run_llm_bench

    settings = _with_llm(_settings(), llm)
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    rec.ensure_index(progress=update)
    figures = run_bench(rec, n=n)
    figures.update(run_chat_bench(rec, settings.model_copy(update={"llm": "none"}), None, n=max(n // 4, 10)))
    if llm is not None and settings.llm != "none":
        t0 = time.perf_counter()
        backend = _backend(settings, required=True)
        figures["llm_load_s"] = round(time.perf_counter() - t0, 2)
        figures.update(run_llm_bench(rec, settings, backend, n=llm_calls))
        figures.update(run_chat_bench(rec, settings, backend, n=llm_calls))
    if json_:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            out.print(f"{key:40} {value}")


def _engine(settings):
    """The chat engine on the configured index and LLM (front ends share this)."""
    from chatrec.engine import ChatEngine

    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    rec.ensure_index(progress=update)
    backend = _backend(settings) if settings.llm != "none" else None
    return ChatEngine(settings, rec, backend)


UserName = Annotated[
    str, typer.Option("--user", help="Your profile name: restores your profile next time.")
]


@app.command()
def chat(user: UserName = "default", llm: LLMChoice = None) -> None:
    """Chat in the terminal: say what you like, give feedback with /like N, /dislike N, ..."""
    from chatrec.repl import Repl

    if not user.strip():
        raise UserError("--user must not be empty")
    settings = _with_llm(_settings(), llm)
    engine = _engine(settings)
    raise typer.Exit(Repl(engine, user.strip(), out, settings.data_dir / "history").run())


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: pick a free one).")] = 7860,
    llm: LLMChoice = None,
) -> None:
    """Open the web UI (Gradio) on http://HOST:PORT."""
    from chatrec.ui import launch

    settings = _with_llm(_settings(), llm)
    engine = _engine(settings)
    launch(engine, host=host, port=port)


eval_app = typer.Typer(help="Measure chatrec the way the field does.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

LLMChoice = Annotated[
    Optional[str], typer.Option("--llm", help="local | openai | none (default: CHATREC_LLM).", show_default=False)
]


def _with_llm(settings, llm: str | None):
    if llm is None:
        return settings
    if llm not in ("local", "openai", "none"):
        raise UserError(f"--llm must be local, openai or none, not {llm!r}")
    return settings.model_copy(update={"llm": llm})


def _backend(settings, required: bool = False):
    """The configured LLM backend, or None (with a warning) when it cannot be used."""
    from chatrec.llm.backends import LLMError, make_backend

    try:
        return make_backend(settings)
    except LLMError as exc:
        if required:
            raise UserError(str(exc)) from None
        err.print(f"[yellow]warning:[/] LLM unavailable, continuing without it: {exc}")
        return None


@eval_app.command("extraction")
def eval_extraction(
    cases: Annotated[Path, typer.Option("--cases", help="JSONL {message, likes, dislikes}.")],
    llm: LLMChoice = None,
    mode: Annotated[
        Optional[str], typer.Option(help="rules | llm | union | fill | auto (default: CHATREC_EXTRACTOR).")
    ] = None,
    show_errors: Annotated[bool, typer.Option(help="Include the misread messages.")] = False,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Micro-F1 of preference extraction over (genre, polarity) pairs."""
    from chatrec.eval.extraction import evaluate, load_cases
    from chatrec.llm.extract import build_extractor

    settings = _with_llm(_settings(), llm)
    if mode is not None:
        if mode not in ("rules", "llm", "union", "fill", "auto"):
            raise UserError(f"--mode must be rules, llm, union, fill or auto, not {mode!r}")
        settings = settings.model_copy(update={"extractor": mode})
    labelled = load_cases(cases)
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    rec.ensure_index(progress=update)
    backend = _backend(settings, required=settings.llm != "none")
    extractor = build_extractor(settings, rec.catalogue, backend, rec.store.embedder)
    result = evaluate(extractor, labelled)
    if not show_errors:
        result.pop("errors")
    result["llm"] = settings.llm
    if json_:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        for key, value in result.items():
            out.print(f"{key:22} {value}")


def _redial_setup(settings, movies: Path, llm_needed: bool):
    """The ReDial catalogue (joined to the enriched movies), indexed in its own collection, and the
    product's extractor over it. The active collection of `recommend`/`chat` is left alone."""
    from chatrec.eval.redial import RedialError, load_movies, setup

    try:
        redial_movies = load_movies(movies)
    except (OSError, RedialError) as exc:
        raise UserError(str(exc)) from None
    backend = _backend(settings, required=True) if llm_needed and settings.llm != "none" else None
    _, update = _progress("Indexing the ReDial movies (first run)")
    rec, extractor, match, items = setup(settings, redial_movies, str(movies), backend, progress=update)
    return rec, extractor, match, redial_movies, items


def _rating_likes(settings):
    from chatrec.behaviour import InteractionError, read_interactions

    if settings.interactions is None:
        return []
    try:
        return read_interactions(settings.interactions, settings.liked_rating)
    except InteractionError as exc:
        raise UserError(str(exc)) from None


def _redial_behaviour(settings, rec, redial_movies, items, evaluated, train) -> dict:
    """Everyone's behaviour for the ReDial catalogue, built so that no evaluated conversation informs its
    own ranking: the movie file's mention counts less the evaluated conversations' own mentions, MovieLens
    likes of the joined movies, and co-mentions from training conversations (``train``, else the bundled log
    of the 600 ReDial training conversations), with the evaluated conversations' rows dropped."""
    from chatrec.behaviour import Behaviour, InteractionError, read_interactions
    from chatrec.eval.redial import (BUNDLED_CO_MENTIONS, behaviour_logs, co_mention_pairs, mention_counts,
                                     mention_prior)

    evaluated_ids = {str(c.get("conversationId")) for c in evaluated}
    if train:
        pairs, source = co_mention_pairs(train), "--train"
    else:
        try:
            pairs, source = read_interactions(BUNDLED_CO_MENTIONS), str(BUNDLED_CO_MENTIONS.relative_to(_ROOT))
        except InteractionError as exc:
            raise UserError(str(exc)) from None
    pairs = [(c, m) for c, m in pairs if c not in evaluated_ids]
    prior = mention_prior(redial_movies, rec.catalogue.ids, mention_counts(evaluated))
    logs = [(log, 1.0) for log in behaviour_logs(items, rec.catalogue.table.index_of, _rating_likes(settings), pairs)
            if log.n_likes]
    rec.use_behaviour(Behaviour(tuple(logs)) if logs else None, prior)
    return {"co_mentions_from": source, "training_conversations": len({c for c, _ in pairs}),
            **(Behaviour(tuple(logs)).describe() if logs else {})}


def _conversations(path: Path, limit: int | None):
    from chatrec.eval.redial import RedialError, load_conversations

    try:
        return load_conversations(path, limit)
    except (OSError, RedialError) as exc:
        raise UserError(str(exc)) from None


@eval_app.command("redial")
def eval_redial(
    conversations: Annotated[Path, typer.Option("--conversations", help="ReDial conversations (JSONL).")],
    movies: Annotated[Path, typer.Option("--movies", help="movies_with_mentions.csv (the ranked catalogue).")],
    fresh_only: Annotated[bool, typer.Option("--fresh-only", help="Only movies not mentioned earlier count.")] = False,
    llm: LLMChoice = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="First N conversations.")] = None,
    baselines: Annotated[bool, typer.Option("--baselines", help="Also popularity and embedding-only.")] = False,
    train: Annotated[
        Optional[list[Path]], typer.Option("--train", help="Training conversations (repeatable): their co-mentions "
                                           "join everyone's behaviour (default: the bundled co-mentions of the 600 "
                                           "ReDial training conversations) and their mention counts make the "
                                           "popularity baseline (default: the movies file's counts).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recall@1/10/50, NDCG@10 and MRR on ReDial, the standardised protocol (see chatrec/eval/redial.py).

    The ranking uses the weights `chatrec tune --save` stored for the ReDial collection, if any."""
    from collections import Counter

    from chatrec.eval import redial

    t0 = time.perf_counter()
    settings = _with_llm(_settings(), llm if llm is not None else "none")
    convs = _conversations(conversations, limit)
    rec, extractor, match, redial_movies, items = _redial_setup(settings, movies, llm_needed=True)
    train_convs = [c for path in train or () for c in _conversations(path, None)]
    behaviour = _redial_behaviour(settings, rec, redial_movies, items, convs, train_convs)
    cases = [c for conv in convs for c in redial.cases(conv, fresh_only)]
    rankers = {"system": redial.ProductRanker(rec, extractor, fresh_only)}
    if baselines:
        counts = (redial.mention_counts(train_convs) if train
                  else Counter({m[0]: m[3] for m in redial_movies}))
        rankers["popularity"] = redial.PopularityRanker(counts, fresh_only)
        rankers["embedding"] = redial.EmbeddingRanker(rec, fresh_only)
    results = redial.run(rankers, cases)
    payload = {**results["system"], "conversations": len(convs), "cases": len(cases), "fresh_only": fresh_only,
               "llm": settings.llm, "catalogue_match": match, "behaviour": behaviour,
               "weights": {k: getattr(rec.weights, k) for k in ("similarity", "behaviour", "content",
                                                                 "collaborative", "mmr_lambda")}}
    if baselines:
        payload["baselines"] = {k: v for k, v in results.items() if k != "system"}
        payload["published_fresh_only"] = {m: dict(zip(("recall@1", "recall@10", "recall@50"), v))
                                           for m, v in redial.PUBLISHED_FRESH.items()}
    payload["seconds"] = round(time.perf_counter() - t0, 1)
    if json_:
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    out.print(f"{len(cases)} cases, {payload['n_pairs']} pairs from {len(convs)} conversations; "
              f"catalogue match {match['match_rate']:.1%}")
    out.print(f"{'system':12} {'R@1':>6} {'R@10':>6} {'R@50':>6} {'NDCG@10':>8} {'MRR':>6}")
    for name, fig in results.items():
        out.print(f"{name:12} {fig['recall@1']:6.3f} {fig['recall@10']:6.3f} {fig['recall@50']:6.3f} "
                  f"{fig['ndcg@10']:8.3f} {fig['mrr']:6.3f}")
    if baselines and fresh_only:
        for name, (r1, r10, r50) in redial.PUBLISHED_FRESH.items():
            out.print(f"{name + ' (pub.)':12} {r1:6.3f} {r10:6.3f} {r50:6.3f}")


@eval_app.command("redial-sentiment")
def eval_redial_sentiment(
    conversations: Annotated[Path, typer.Option("--conversations", help="ReDial conversations (JSONL).")],
    movies: Annotated[Path, typer.Option("--movies", help="movies_with_mentions.csv (for title matching).")],
    llm: LLMChoice = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1)] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Does the extractor read the seeker's liked/disliked movies right? Macro-F1 vs ReDial's labels."""
    from chatrec.eval import redial

    settings = _with_llm(_settings(), llm if llm is not None else "none")
    convs = _conversations(conversations, limit)
    _, extractor, _, _, _ = _redial_setup(settings, movies, llm_needed=True)
    pairs = [p for conv in convs for p in redial.sentiment_pairs(conv, extractor)]
    if not pairs:
        raise UserError("no seeker-mentioned movie with a liked/disliked label in these conversations")
    gold = [g for g, _ in pairs]
    pred = [0 if s < 0 else 1 for _, s in pairs]  # neutral reads lean liked, as most mentions are
    majority = max((0, 1), key=gold.count)
    payload = {
        "n": len(pairs),
        "macro_f1": round(redial.macro_f1(gold, pred), 4),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(pairs), 4),
        "majority_baseline": {"label": majority, "macro_f1": round(redial.macro_f1(gold, [majority] * len(gold)), 4),
                              "accuracy": round(gold.count(majority) / len(gold), 4)},
        "share_liked": round(gold.count(1) / len(gold), 4),
        "llm": settings.llm,
    }
    if json_:
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        for key, value in payload.items():
            out.print(f"{key:20} {value}")


@eval_app.command("movielens")
def eval_movielens(
    ratings: Annotated[Path, typer.Option("--ratings", help="Ratings (userId,movieId,rating,timestamp; .csv.gz).")]
    = Path(__file__).resolve().parent.parent / "data" / "ratings.csv.gz",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Score the first N users only.")] = None,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Popularity and item-kNN.")] = True,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Leave-last-out on MovieLens latest-small: HR@10 and NDCG@10, beside popularity and item-kNN."""
    from chatrec.eval.movielens import evaluate

    settings = _with_llm(_settings(), "none")
    rec = _recommender(settings)
    _, update = _progress("Building the index (first run)")
    rec.ensure_index(progress=update)
    try:
        result = evaluate(rec, ratings, limit=limit, baselines=baselines)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if json_:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    out.print(f"{result['n_users']} users, leave-last-out, all items")
    out.print(f"{'system':10} HR@10 {result['hr@10']:.4f}  NDCG@10 {result['ndcg@10']:.4f}")
    for name, fig in {**result.get("baselines", {}), **result["published"]}.items():
        out.print(f"{name:10} HR@10 {fig['hr@10']:.4f}  NDCG@10 {fig['ndcg@10']:.4f}")


@app.command()
def tune(
    conversations: Annotated[list[Path], typer.Option("--conversations", help="ReDial conversations (JSONL); "
                                                      "repeat to pool files, e.g. train_500 and valid_100.")],
    movies: Annotated[Path, typer.Option("--movies", help="movies_with_mentions.csv (the ranked catalogue).")],
    folds: Annotated[int, typer.Option("--folds", min=2, max=20, help="Cross-validation folds (by conversation).")]
    = 5,
    limit: Annotated[Optional[int], typer.Option("--limit", min=2, help="First N conversations of each file.")] = None,
    ablation: Annotated[bool, typer.Option("--ablation", help="Also one row per behaviour change, each "
                                           "cross-validated the same way.")] = False,
    save: Annotated[bool, typer.Option("--save", help="Fit on all folds and save the weights for the ReDial "
                                       "collection (used by `eval redial`; paper defaults elsewhere).")] = False,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="With --save: the file to write (default: "
                                                     "$CHATREC_DATA_DIR/tuned_weights.json).")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Learn wS, wB, wC, the collaborative share and the MMR λ by K-fold cross-validation on ReDial.

    Every figure printed is held out: each fold is scored with weights fitted on the other folds and
    with everyone's behaviour (mention counts, co-mentions) built without it."""
    from datetime import datetime, timezone

    from chatrec.eval.tuning import Tuner, Variant, paper_point

    t0 = time.perf_counter()
    settings = _with_llm(_settings(), "none").model_copy(update={"use_tuned": False})
    convs = [c for path in conversations for c in _conversations(path, limit)]
    if len(convs) < folds:
        raise UserError(f"{len(convs)} conversations cannot make {folds} folds")
    rec, extractor, match, redial_movies, items = _redial_setup(settings, movies, llm_needed=False)
    base = settings.weights()
    say = (lambda _: None) if json_ else (lambda line: err.print(line))
    tuner = Tuner(rec, extractor, convs, redial_movies, items, _rating_likes(settings), k=folds, progress=say)
    full = Variant("tuned: mention prior + MovieLens + co-mentions + earlier picks as context")
    prepared = tuner.prepare(full)
    rows = []
    if ablation:
        steps = [
            (Variant("before: rating prior, no collaborative", mention_prior=False, movielens=False,
                     co_mentions=False, context_seed=0.0), True),
            (Variant("+ mention-count prior", movielens=False, co_mentions=False, context_seed=0.0), True),
            (Variant("+ MovieLens co-likes in B", co_mentions=False, context_seed=0.0), True),
            (Variant("+ co-mentions in training conversations", context_seed=0.0), True),
            (full, True),
        ]
        for variant, paper in steps:
            folds_v = prepared if variant is full else tuner.prepare(variant)
            rows.append(tuner.cross_validate(variant, base, fixed=paper_point(base), folds=folds_v).summary()
                        | {"variant": variant.name.replace("tuned: ", "") + " (paper weights)"})
            if variant is not full:
                rows.append(tuner.cross_validate(variant, base, folds=folds_v).summary()
                            | {"variant": variant.name + " (tuned weights)"})
    tuned = tuner.cross_validate(full, base, folds=prepared).summary()
    paper = tuner.cross_validate(full, base, fixed=paper_point(base), folds=prepared).summary()
    payload = {"conversations": len(convs), "cases": sum(f.n_cases for f in prepared), "folds": folds,
               "catalogue_match": match, "tuned": tuned, "paper_defaults": paper}
    if rows:
        payload["ablation"] = rows + [tuned]
    if save:
        point = tuner.fit(prepared, base)
        from chatrec.settings import load_tuned
        from chatrec.store import _atomic_write_bytes

        target = out_path or settings.tuned_file
        data = load_tuned(target)
        data[rec.store.collection_name] = {
            "weights": point, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "chatrec " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["tune"] else "chatrec tune",
            "cross_validated": {k: tuned[k] for k in ("n_pairs", "recall@1", "recall@10", "recall@50",
                                                        "recall@1_sd", "recall@10_sd", "recall@50_sd")},
        }
        _atomic_write_bytes(target,
                            lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))
        payload["saved"] = {"path": str(target), "collection": rec.store.collection_name, "weights": point}
    payload["seconds"] = round(time.perf_counter() - t0, 1)
    if json_:
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    out.print(f"{payload['cases']} cases from {len(convs)} conversations, {folds}-fold cross-validation, "
              f"fresh-only; catalogue match {match['match_rate']:.1%}")
    out.print(f"{'configuration':58} {'R@1':>11} {'R@10':>11} {'R@50':>11} {'ms/case':>8}")
    for row in payload.get("ablation", [paper, tuned]):
        out.print(f"{row['variant'][:58]:58} " + " ".join(
            f"{row[k]:.3f}±{row[k + '_sd']:.3f}" for k in ("recall@1", "recall@10", "recall@50"))
            + f" {row['ms_per_case']:8.1f}")
    for f in tuned["per_fold"]:
        out.print(f"fold {f['fold']}: weights {f['weights']}")
    if save:
        out.print(f"saved {payload['saved']['weights']} for {payload['saved']['collection']!r} "
                  f"to {payload['saved']['path']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: configure logging once and turn known errors into one clear line."""
    from chatrec.catalog import CatalogError
    from chatrec.embed import EmbedderError
    from chatrec.state import StateError
    from chatrec.store import StoreError

    level = os.environ.get("CHATREC_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except (UserError, CatalogError, StoreError, EmbedderError, StateError) as exc:  # StateError: full/read-only disk
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click's own usage errors come here in non-standalone mode
        import click

        # typer may raise its own vendored click's exceptions: match on the interface, not the class
        if isinstance(exc, click.exceptions.ClickException) or (
            hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int)
        ):
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
