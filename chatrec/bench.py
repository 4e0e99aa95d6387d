"""Speed figures measured in one process, with the floors beside them so overhead shows as a ratio.

Every query is distinct (the embedder's query cache never hits), and the first calls are
discarded as warm-up. Nothing here asserts a time: it prints what it measured.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from chatrec.recommend.query import Query

MOODS = ["funny", "scary", "slow-burning", "heartwarming", "mind-bending", "gritty", "epic", "quiet", "weird", "tense"]
THINGS = [
    "space adventure", "crime drama", "romantic comedy", "animated film for kids", "war movie", "documentary",
    "heist", "courtroom drama", "zombie outbreak", "coming-of-age story", "musical", "western", "spy thriller",
    "superhero movie", "time travel", "sports drama", "haunted house", "road trip", "biopic", "noir mystery",
]


def queries(n: int) -> list[str]:
    combos = itertools.cycle(itertools.product(MOODS, THINGS))
    return [f"something {m} like a {t} #{i}" if i >= 200 else f"something {m} like a {t}"
            for i, (m, t) in zip(range(n), combos)]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _timed(fn, args_list, warmup: int = 5) -> list[float]:
    for a in args_list[:warmup]:
        fn(a)
    out = []
    for a in args_list:
        t0 = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t0)
    return out


def run(app, n: int = 200, llm_calls: int = 0) -> dict:
    """Every figure: ranking, indexing, a cold command, chat turns and re-ranks; with ``llm_calls``, the model's."""
    figures = run_ranking(app, n=n)
    figures.update(run_chat(app, app.engine_with(llm=False), n=max(n // 4, 10)))
    if llm_calls:
        t0 = time.perf_counter()
        app.load_model(required=True)
        figures["llm_load_s"] = round(time.perf_counter() - t0, 2)
        figures.update(run_llm(app, n=llm_calls))
        figures.update(run_chat(app, app.engine_with(llm=True), n=llm_calls))
    return figures


def run_ranking(app, n: int = 200, index_sample: int = 1000, cold_runs: int = 3) -> dict:
    figures: dict[str, object] = {}
    rec, embedder, index = app.recommender, app.embedder, app.vector_index
    embedder.query("warm up")
    texts = queries(n)
    # Floors on the same run: embedding a short query alone, a top-50 vector-index query alone.
    embed_t = _timed(lambda t: embedder.encode([t]), [f"floor {t}" for t in texts])
    vecs = [embedder.encode([f"probe {t}"])[0] for t in texts[: min(n, 100)]]
    index_t = _timed(lambda v: index.query(v, 50), vecs)
    rec_t = _timed(lambda t: rec.recommend(Query(text=t), k=10), [f"rec {t}" for t in texts])
    tag_t = _timed(
        lambda t: rec.recommend(Query(text=t, liked_tags={"comedy": 1.0}, disliked_tags={"romance": 1.0}), k=10),
        [f"tags {t}" for t in texts],
    )
    figures["items"] = rec.catalogue.n
    figures["embedding_backend"] = embedder.backend
    figures["floor_query_embedding"] = percentiles(embed_t)
    figures["floor_chroma_top50"] = percentiles(index_t)
    figures["recommend"] = percentiles(rec_t)
    figures["recommend_with_tags"] = percentiles(tag_t)
    floor = figures["floor_query_embedding"]["p50_ms"] + figures["floor_chroma_top50"]["p50_ms"]
    figures["recommend_p50_over_floor"] = round(figures["recommend"]["p50_ms"] / floor, 2) if floor else None

    # Re-index of the unchanged catalogue, in this warm process.
    t0 = time.perf_counter()
    report = app.index_file(app.settings.catalog)
    figures["reindex_unchanged_s"] = round(time.perf_counter() - t0, 3)
    figures["reindex_unchanged_embedded"] = report.embedded

    # Fresh index throughput on a sample, into a throwaway embedded Chroma.
    from chatrec.catalogue.importer import load_catalog

    sample = load_catalog(app.settings.catalog)[:index_sample]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = app.scratch(Path(tmp), "bench")
        report = scratch.index.build(sample)
        figures["index_items_per_s"] = round(report.total / report.seconds, 1)
        figures["index_sample_items"] = report.total

    # Cold start of the whole command, in fresh processes on the warm index.
    cold = []
    for i in range(cold_runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "chatrec", "recommend", f"cold start probe {i}", "--json"],
                       env=dict(os.environ), check=True, capture_output=True)
        cold.append(time.perf_counter() - t0)
    figures["cold_command_s"] = {"median": round(float(np.median(cold)), 2), "runs": cold_runs}
    return figures


def run_llm(app, n: int = 20) -> dict:
    """LLM figures after the model is loaded: extraction, and `recommend --explain` in a warm process
    (read the message, rank, explain to the end: the first line shown, and the whole call)."""
    from chatrec.llm.explain import figures as explanation_figures
    from chatrec.llm.extract import Extractor, LLMExtractor

    model = app.load_model(required=True)
    llm_only = Extractor(app.extractor.rules, LLMExtractor(model), mode="llm")
    texts = [f"{t}, nothing too long" for t in queries(n + 2)]
    llm_only.extract(texts[1])  # warm-up

    # Extraction first, in its own loop: interleaving it would evict the explanation prompt's cached
    # prefix from llama.cpp and time a pattern the default setup (rules extraction) never produces.
    extract_s = []
    for text in texts[2:]:
        t0 = time.perf_counter()
        llm_only.extract(text)
        extract_s.append(time.perf_counter() - t0)
    engine = app.engine_with(llm=True)
    engine.recommend(texts[0], k=10, explain=True).text()  # warm-up: caches the prompt's fixed prefix
    first_s, call_s, outcomes = [], [], []
    for text in texts[2:]:
        t0 = time.perf_counter()
        reply = engine.recommend(text, k=10, explain=True)
        first = None
        for _ in reply.lines():
            if first is None:
                first = time.perf_counter() - t0
        call_s.append(time.perf_counter() - t0)
        first_s.append(first if first is not None else call_s[-1])
        outcomes.append(reply.outcome)
    reasons = Counter((o.fallback_reason or "").split(":")[0] for o in outcomes if o.withdrawn)
    return {
        "llm": f"{model.info.name}:{model.info.model}",
        "extractor": app.extractor.mode,
        "llm_extraction": percentiles(extract_s),
        "explain_first_token": percentiles(first_s),
        "explain_whole_call": percentiles(call_s),
        **explanation_figures(outcomes),
        "withdrawal_reasons": dict(reasons),
        "calls": n,
    }


def run_chat(app, engine, n: int = 60) -> dict:
    """The chat engine as users meet it: whole turns, and feedback re-ranks (no LLM, no index query).

    State goes to a throwaway SQLite file, so the figures include the durable writes."""
    llm = engine.explains_with_model
    session = engine.session("bench")
    engine.turn(session, "warm up: a heist movie").text()
    turns, firsts, reranks, feedbacks, outcomes = [], [], [], [], []
    events = ["like", "dislike", "skip", "click", "watched"]
    for i, text in enumerate(queries(n)):
        t0 = time.perf_counter()
        reply = engine.turn(session, f"chat {text}")
        first = None
        for _ in reply.lines():
            if first is None:
                first = time.perf_counter() - t0
        turns.append(time.perf_counter() - t0)
        firsts.append(first if first is not None else turns[-1])
        if reply.outcome is not None:
            outcomes.append(reply.outcome)
        for j in range(3):
            t0 = time.perf_counter()
            fb = engine.feedback(session, 1 + (i + j) % len(session.shown), events[(i + j) % len(events)])
            feedbacks.append(time.perf_counter() - t0)
            reranks.append(fb.rerank_seconds)
        if i % 10 == 9:
            engine.reset(session)  # keep the profile from growing without bound
    engine.state.close()
    prefix = "chat_llm" if llm else "chat_no_llm"
    figures = {
        f"{prefix}_turn": percentiles(turns),
        f"{prefix}_rerank_after_feedback": percentiles(reranks),
        f"{prefix}_feedback_incl_sqlite_write": percentiles(feedbacks),
        f"{prefix}_turns": n,
    }
    if llm:
        figures[f"{prefix}_first_explanation_token"] = percentiles(firsts)
    return figures
