"""The ``chatrec`` command line. Thin: parse the arguments, ask the application (:mod:`chatrec.app`), render.

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
from rich.markup import escape

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


class UserError(Exception):
    """Shown as one line on stderr with exit code 2: never a traceback."""


LLMChoice = Annotated[
    Optional[str], typer.Option("--llm", help="local | openai | none (default: CHATREC_LLM).", show_default=False)
]
UserName = Annotated[str, typer.Option("--user", help="Your profile name: restores your profile next time.")]


# -- building the application ------------------------------------------------------------------
def _settings(llm: str | None = None, **overrides):
    from pydantic import ValidationError

    from chatrec.settings import Settings, check_environment

    if llm is not None and llm not in ("local", "openai", "none"):
        raise UserError(f"--llm must be local, openai or none, not {llm!r}")
    try:
        check_environment()
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CHATREC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"invalid setting: {problems}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    logging.getLogger().setLevel(settings.log_level)
    if llm is not None:
        overrides["llm"] = llm
    return settings.model_copy(update=overrides) if overrides else settings


def _app(settings, collection: str | None = None, build: bool = True, quiet: bool = False):
    """The application over the configured (or given) collection; ``build`` first builds a missing index."""
    from chatrec.app import App

    application = App(settings, collection)
    if build:
        _, update = _progress("Building the index (first run)", quiet)
        built = application.ensure_index(progress=update)
        if built is not None and not quiet:
            err.print(f"Built the index: {built.total} items in {built.seconds:.1f}s.")
    return application


def _warn(application) -> None:
    for warning in application.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    application.warnings.clear()


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


def _print_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")


# -- commands ------------------------------------------------------------------------------------
@app.command()
def index(
    path: Annotated[Optional[Path], typer.Argument(help="CSV or JSONL catalogue; default: the bundled movies.")] = None,
    map_: Annotated[
        list[str], typer.Option("--map", help="Column mapping FIELD=COLUMN, e.g. text=description or "
                                "directors=author (repeatable).")
    ] = [],
    collection: Annotated[Optional[str], typer.Option(help="Collection name; default: the file's stem.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Drop the collection and embed everything again.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Build or update the item index (incremental: unchanged items are not embedded again)."""
    from chatrec.catalogue.collections import collection_for
    from chatrec.catalogue.importer import parse_mapping

    settings = _settings()
    path = path or settings.catalog
    try:
        mapping = parse_mapping(map_)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    application = _app(settings, collection or collection_for(path), build=False)
    _, update = _progress(f"Indexing {path.name}")
    report = application.index_file(path, mapping, rebuild=rebuild, progress=update)
    data = report.as_dict()
    if json_:
        out.print_json(json.dumps(data))
        return
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
    explain: Annotated[bool, typer.Option("--explain", help="Explain the picks in words.")] = False,
    llm: LLMChoice = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rank the catalogue for TEXT and tag preferences: the chat's own turn, on a throwaway session. The LLM
    is used only with --explain (and for extraction when CHATREC_EXTRACTOR asks for it)."""
    from chatrec.api import recommend_payload, recommend_warnings
    from chatrec.llm.explain import reason

    settings = _settings(llm)
    if not explain and settings.extractor not in ("llm", "union", "fill"):
        settings = settings.model_copy(update={"llm": "none"})  # no model to load
    application = _app(settings, quiet=json_)
    reply = application.one_shot.recommend(text, like_tag, dislike_tag, k, filter_disliked, explain)
    _warn(application)
    for w in recommend_warnings(reply):
        err.print(f"[yellow]warning:[/] {escape(w)}")
    if json_:
        _print_json(recommend_payload(reply))  # the shape POST /v1/recommend answers
        return
    if reply.cold_start:
        out.print("No preference known yet: here are popular, well-rated picks. Tell me what you like!")
    elif reply.understood:
        out.print(f"Understood: {escape(reply.understood)}")
    if reply.constraint_note:
        out.print(escape(reply.constraint_note))
    for n, r in enumerate(reply.recommendations, 1):
        b = r.breakdown
        tags = escape(", ".join(r.item.all_tags[:4]))
        pen = escape(f" −{b.penalty:.2f} ({', '.join(b.disliked_tags)})") if b.penalty else ""
        mark = "≈ " if r.fit.closest else ""
        out.print(
            f"{n:>2}. {mark}{escape(r.item.display_title)} — {escape(reason(r))}  [dim]{r.score:.3f} = "
            f"S {b.similarity:.2f} · B {b.behaviour:.2f} · C {b.content:.2f}{pen}[/]  [cyan]{tags}[/]"
        )
    if reply.explanation is not None:
        out.print()
        for line in reply.lines():  # each line only once it passed the review
            out.print(escape(line.text))


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
    items: Annotated[Optional[int], typer.Option("--items", min=1000, max=5_000_000, help="Measure a synthetic "
                                                 "catalogue of this many items made from the real one (built once "
                                                 "under CHATREC_DATA_DIR, reused after).")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print speed figures (percentiles over many calls, in one process, with the floors beside them).
    With --llm local|openai, also the LLM figures (extraction, first explanation line, whole turns).
    With --items N, the product at N items (chatrec/bench_scale.py says how the catalogue is made)."""
    from chatrec.bench import run

    settings = _settings(llm)
    application = _app(settings, quiet=json_)
    if items is not None:
        from chatrec.bench_scale import run as run_scale

        _, update = _progress(f"Building a {items:,}-item catalogue (first run)", json_)
        figures = run_scale(application, items, progress=update)
        _print_json(figures) if json_ else [out.print(f"{k:40} {v}") for k, v in figures.items()]
        return
    try:
        figures = run(application, n=n, llm_calls=llm_calls if llm not in (None, "none") else 0)
    except Exception as exc:
        from chatrec.llm.backends import LLMError

        if isinstance(exc, LLMError):
            raise UserError(str(exc)) from None
        raise
    if json_:
        _print_json(figures)
    else:
        for key, value in figures.items():
            out.print(f"{key:40} {value}")


def _engine(settings):
    """The chat engine on the configured index and LLM (the REPL and the UI share it)."""
    application = _app(settings)
    engine = application.engine
    application.model  # load it now (not at the first message), and say so if it cannot load
    _warn(application)
    return application, engine


@app.command()
def chat(user: UserName = "default", llm: LLMChoice = None) -> None:
    """Chat in the terminal: say what you like, give feedback with /like N, /dislike N, ..."""
    from chatrec.repl import Repl

    if not user.strip():
        raise UserError("--user must not be empty")
    settings = _settings(llm)
    _, engine = _engine(settings)
    raise typer.Exit(Repl(engine, user.strip(), out, settings.data_dir / "history").run())


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: pick a free one).")] = 7860,
    llm: LLMChoice = None,
) -> None:
    """Open the web UI (Gradio) on http://HOST:PORT."""
    from chatrec.ui import launch

    _, engine = _engine(_settings(llm))
    launch(engine, host=host, port=port)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs CHATREC_API_KEY.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: pick a free one).")] = 8765,
    llm: LLMChoice = None,
) -> None:
    """Serve the HTTP API on http://HOST:PORT: versioned JSON routes under /v1, an OpenAI-compatible
    /v1/chat/completions, OpenAPI docs at /docs (docs/API.md)."""
    from chatrec.api import bind_problem, serve as run

    settings = _settings(llm)
    problem = bind_problem(host, settings)
    if problem:
        raise UserError(problem)
    application, _ = _engine(settings)

    def ready(url: str) -> None:
        print(f"chatrec API on {url} (docs: {url}/docs)" + ("" if settings.api_key else "; no API key: "
              "loopback only"), flush=True)

    try:
        run(application, host, port, ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# -- evaluations ---------------------------------------------------------------------------------
eval_app = typer.Typer(help="Measure chatrec the way the field does.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


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

    overrides = {}
    if mode is not None:
        if mode not in ("rules", "llm", "union", "fill", "auto"):
            raise UserError(f"--mode must be rules, llm, union, fill or auto, not {mode!r}")
        overrides["extractor"] = mode
    settings = _settings(llm, **overrides)
    labelled = load_cases(cases)
    application = _app(settings, quiet=json_)
    if settings.llm != "none":
        application.load_model(required=True)
    result = evaluate(application.extractor, labelled)
    if not show_errors:
        result.pop("errors")
    result["llm"] = settings.llm
    _report(result, json_)


@eval_app.command("requests")
def eval_requests(
    cases: Annotated[Path, typer.Option("--cases", help="JSONL requests with checkable constraints "
                                        "(genres_any/all/none, year_min/max, cast_any, director_any, ...).")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many picks are checked.")] = 5,
    llm: LLMChoice = None,
    mode: Annotated[
        Optional[str], typer.Option(help="rules | llm | union | fill | auto: who reads the requests "
                                    "(default: CHATREC_EXTRACTOR; llm and union need --llm).")
    ] = None,
    show_errors: Annotated[bool, typer.Option(help="Include the requests whose picks missed a check.")] = False,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Do the top picks meet what was asked (people, years, genres, runtime)? Each case through `recommend`."""
    from chatrec.eval.requests import RequestCaseError, evaluate, load_cases

    overrides = {}
    if mode is not None:
        if mode not in ("rules", "llm", "union", "fill", "auto"):
            raise UserError(f"--mode must be rules, llm, union, fill or auto, not {mode!r}")
        overrides["extractor"] = mode
    settings = _settings(llm if llm is not None else "none", **overrides)
    try:
        labelled = load_cases(cases)
    except (OSError, RequestCaseError) as exc:
        raise UserError(str(exc)) from None
    application = _app(settings, quiet=json_)
    if settings.llm != "none":
        application.load_model(required=True)
    result = evaluate(application.one_shot, labelled, k=k)
    result["reader"] = application.extractor.mode if application.extractor.llm is not None else "rules"
    if not show_errors:
        result.pop("errors")
    _report(result, json_)


def _report(result: dict, json_: bool) -> None:
    if json_:
        _print_json(result)
    else:
        for key, value in result.items():
            out.print(f"{key:24} {value}")


def _redial(settings, movies: Path, llm_needed: bool):
    """The ReDial catalogue, indexed in its own collection (the active one of `chat` is left alone)."""
    from chatrec.eval.redial import RedialError, setup

    base = _app(settings, build=False)
    if llm_needed and settings.llm != "none":
        base.load_model(required=True)
    _, update = _progress("Indexing the ReDial movies (first run)")
    try:
        return setup(base, movies, progress=update)
    except (OSError, RedialError) as exc:
        raise UserError(str(exc)) from None


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
                                           "join everyone's behaviour (default: the bundled co-mentions of the "
                                           "ReDial training conversations) and their mention counts make the "
                                           "popularity baseline (default: the movies file's counts).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recall@1/10/50, NDCG@10 and MRR on ReDial, the standardised protocol (see chatrec/eval/redial.py).

    The ranking uses the weights `chatrec tune --save` stored for the ReDial collection, if any."""
    from chatrec.eval import redial

    settings = _settings(llm if llm is not None else "none")
    convs = _conversations(conversations, limit)
    train_convs = [c for path in train or () for c in _conversations(path, None)]
    setup = _redial(settings, movies, llm_needed=True)
    payload = redial.evaluate(setup, settings, convs, train_convs if train else None, fresh_only, baselines)
    if json_:
        _print_json(payload)
        return
    out.print(f"{payload['cases']} cases, {payload['n_pairs']} pairs from {len(convs)} conversations; "
              f"catalogue match {payload['catalogue_match']['match_rate']:.1%}")
    out.print(f"{'system':12} {'R@1':>6} {'R@10':>6} {'R@50':>6} {'NDCG@10':>8} {'MRR':>6}")
    for name, fig in {"system": payload, **payload.get("baselines", {})}.items():
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

    settings = _settings(llm if llm is not None else "none")
    convs = _conversations(conversations, limit)
    setup = _redial(settings, movies, llm_needed=True)
    payload = redial.sentiment(setup.extractor, convs)
    if payload is None:
        raise UserError("no seeker-mentioned movie with a liked/disliked label in these conversations")
    payload["llm"] = settings.llm
    _report(payload, json_)


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

    application = _app(_settings("none"), quiet=json_)
    try:
        result = evaluate(application.recommender, ratings, limit=limit, baselines=baselines)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if json_:
        _print_json(result)
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
    signals: Annotated[Optional[list[str]], typer.Option("--signal", help="A seed signal whose share the fit "
                                                         "searches too: seed_similarity, seed_genres or seed_people; "
                                                         "repeat for more.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Learn wS, wB, wC, the collaborative share and the MMR λ by K-fold cross-validation on ReDial.

    Every figure printed is held out: each fold is scored with weights fitted on the other folds and
    with everyone's behaviour (mention counts, co-mentions) built without it."""
    from chatrec.eval.tuning import SEED_KNOBS, run_tuning

    if set(signals or ()) - set(SEED_KNOBS):
        raise UserError(f"--signal must be one of {', '.join(SEED_KNOBS)}")
    settings = _settings("none", use_tuned=False)
    convs = [c for path in conversations for c in _conversations(path, limit)]
    if len(convs) < folds:
        raise UserError(f"{len(convs)} conversations cannot make {folds} folds")
    setup = _redial(settings, movies, llm_needed=False)
    say = (lambda _: None) if json_ else (lambda line: err.print(line))
    command = "chatrec " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["tune"] else "chatrec tune"
    payload = run_tuning(setup, settings, convs, folds, ablation, (out_path or settings.tuned_file) if save else None,
                         command, say, signals=tuple(signals or ()))
    if json_:
        _print_json(payload)
        return
    out.print(f"{payload['cases']} cases from {len(convs)} conversations, {folds}-fold cross-validation, "
              f"fresh-only; catalogue match {payload['catalogue_match']['match_rate']:.1%}")
    out.print(f"{'configuration':58} {'R@1':>11} {'R@10':>11} {'R@50':>11} {'ms/case':>8}")
    for row in payload.get("ablation", [payload["paper_defaults"], payload["tuned"]]):
        out.print(f"{row['variant'][:58]:58} " + " ".join(
            f"{row[k]:.3f}±{row[k + '_sd']:.3f}" for k in ("recall@1", "recall@10", "recall@50"))
            + f" {row['ms_per_case']:8.1f}")
    for f in payload["tuned"]["per_fold"]:
        out.print(f"fold {f['fold']}: weights {f['weights']}")
    if save:
        saved = payload["saved"]
        out.print(f"saved {saved['weights']} for {saved['collection']!r} to {saved['path']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: configure logging once and turn known errors into one clear line."""
    from chatrec.adapters.embedder import EmbedderError
    from chatrec.adapters.sqlite_state import StateError
    from chatrec.catalogue.importer import CatalogError
    from chatrec.engine import EngineError
    from chatrec.llm.backends import LLMError
    from chatrec.ports import StoreError
    from chatrec.recommend.behaviour import InteractionError

    # the level is the settings' (CHATREC_LOG_LEVEL), applied once they are read
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except (UserError, CatalogError, StoreError, EmbedderError, StateError, InteractionError, LLMError,
            EngineError) as exc:  # StateError: full/read-only disk
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
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
            err.print(f"[bold red]error:[/] {escape(str(exc.strerror or exc))}: {escape(str(getattr(exc, 'filename', '') or ''))}")
            return 1
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}")
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
