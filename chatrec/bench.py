"""Speed figures measured in one process, with the floors beside them so overhead shows as a ratio.

Every query is distinct (the embedder's query cache never hits), and the first calls are
discarded as warm-up. Nothing here asserts a time: it prints what it measured.
"""

from __future__ import annotations

import itertools
from collections import Counter
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chatrec.recommender import Query, Recommender

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


def run_bench(rec: Recommender, n: int = 200, index_sample: int = 1000, cold_runs: int = 3) -> dict:
    figures: dict[str, object] = {}
    cat = rec.catalogue  # loads the table (warm process from here on)
    embedder = rec.store.embedder
    embedder.query("warm up")
    texts = queries(n)
    # Floors on the same run: embedding a short query alone, a Chroma top-50 alone.
    embed_t = _timed(lambda t: embedder.encode([t]), [f"floor {t}" for t in texts])
    vecs = [embedder.encode([f"probe {t}"])[0] for t in texts[: min(n, 100)]]
    chroma_t = _timed(lambda v: rec.store.query(v, 50), vecs)
    rec_t = _timed(lambda t: rec.recommend(Query(text=t), k=10), [f"rec {t}" for t in texts])
    tag_t = _timed(
        lambda t: rec.recommend(Query(text=t, liked_tags={"comedy": 1.0}, disliked_tags={"romance": 1.0}), k=10),
        [f"tags {t}" for t in texts],
    )
    figures["items"] = len(cat.items)
    figures["embedding_backend"] = embedder.backend
    figures["floor_query_embedding"] = percentiles(embed_t)
    figures["floor_chroma_top50"] = percentiles(chroma_t)
    figures["recommend"] = percentiles(rec_t)
    figures["recommend_with_tags"] = percentiles(tag_t)
    floor = figures["floor_query_embedding"]["p50_ms"] + figures["floor_chroma_top50"]["p50_ms"]
    figures["recommend_p50_over_floor"] = round(figures["recommend"]["p50_ms"] / floor, 2) if floor else None

    # Re-index of the unchanged catalogue, in this warm process.
    t0 = time.perf_counter()
    report = rec.index_file(rec.settings.catalog)
    figures["reindex_unchanged_s"] = round(time.perf_counter() - t0, 3)
    figures["reindex_unchanged_embedded"] = report.embedded

    # Fresh index throughput on a sample, into a throwaway embedded Chroma.
    from chatrec.catalog import load_catalog
    from chatrec.store import ItemStore

    sample = load_catalog(rec.settings.catalog)[:index_sample]
    with tempfile.TemporaryDirectory() as tmp:
        store = ItemStore(Path(tmp), "bench", embedder=embedder, batch_size=rec.settings.index_batch_size)
        report = store.index(sample)
        figures["index_items_per_s"] = round(report.total / report.seconds, 1)
        figures["index_sample_items"] = report.total

    # Cold start of the whole command, in fresh processes on the warm index.
    env = dict(os.environ)
    cold = []
    for i in range(cold_runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "chatrec", "recommend", f"cold start probe {i}", "--json"],
            env=env, check=True, capture_output=True,
        )
        cold.append(time.perf_counter() - t0)
    figures["cold_command_s"] = {"median": round(float(np.median(cold)), 2), "runs": cold_runs}
    return figures


def run_llm_bench(rec: Recommender, settings, backend, n: int = 20) -> dict:
    """LLM figures after the model is loaded: extraction, first explanation token, whole --explain.

    A "whole --explain call" is what `chatrec recommend TEXT --explain` does in a warm process:
    extract preferences (the configured extractor), rank, and stream the explanation to the end.
    """
    from chatrec.llm.explain import Explainer
    from chatrec.llm.extract import Extractor, LLMExtractor, build_extractor

    extractor = build_extractor(settings, rec.catalogue, backend, rec.store.embedder)
    llm_only = Extractor(extractor.rules, LLMExtractor(backend), mode="llm")
    explainer = Explainer(backend, extractor.rules.vocabulary.titles)
    texts = [f"{t}, nothing too long" for t in queries(n + 2)]
    llm_only.extract(texts[1])  # warm-up

    # Extraction first, in its own loop: interleaving it would evict the explanation prompt's cached
    # prefix from llama.cpp and time a pattern the default setup (rules extraction) never produces.
    extract_s = []
    for text in texts[2:]:
        t0 = time.perf_counter()
        llm_only.extract(text)
        extract_s.append(time.perf_counter() - t0)
    # Warm-up: the first explanation pays for caching the fixed prompt prefix, as in a chat's first turn.
    explainer.explain(rec.recommend(Query(text=texts[0]), k=10).items, texts[0])
    first_s, call_s, reasons, corrected, n_corrected = [], [], Counter(), Counter(), 0
    for text in texts[2:]:
        t0 = time.perf_counter()
        prefs = extractor.extract(text)
        result = rec.recommend(Query.from_preferences(prefs, text, {}, {}), k=10)
        first = None
        for chunk in explainer.stream(result.items, text):
            if first is None:
                first = time.perf_counter() - t0
        call_s.append(time.perf_counter() - t0)
        first_s.append(first if first is not None else call_s[-1])
        if explainer.last_fallback_reason:
            reasons[explainer.last_fallback_reason.split(":")[0]] += 1
        n_corrected += bool(explainer.last_repairs)
        corrected.update(r.kind for r in explainer.last_repairs)
    fallbacks = sum(reasons.values())
    return {
        "llm": f"{backend.info.name}:{backend.info.model}",
        "extractor": extractor.mode,
        "llm_extraction": percentiles(extract_s),
        "explain_first_token": percentiles(first_s),
        "explain_whole_call": percentiles(call_s),
        "explanations_replaced_by_template": f"{fallbacks}/{n}",
        "replacement_reasons": dict(reasons),
        "explanations_corrected_by_line": f"{n_corrected}/{n}",
        "corrected_lines": dict(corrected),
        "calls": n,
    }


def run_chat_bench(rec: Recommender, settings, backend=None, n: int = 60) -> dict:
    """The chat engine as users meet it: whole turns, and feedback re-ranks (no LLM, no store query).

    State goes to a throwaway SQLite file, so the figures include the durable writes.
    """
    from chatrec.engine import ChatEngine
    from chatrec.state import StateStore

    with tempfile.TemporaryDirectory() as tmp:
        engine = ChatEngine(settings, rec, backend, StateStore(Path(tmp) / "bench.sqlite3"))
        session = engine.session("bench")
        engine.turn(session, "warm up: a heist movie").text()
        turns, firsts, reranks, feedbacks = [], [], [], []
        events = ["like", "dislike", "skip", "click", "watched"]
        for i, text in enumerate(queries(n)):
            t0 = time.perf_counter()
            reply = engine.turn(session, f"chat {text}")
            first = None
            for chunk in reply.stream:
                if first is None and chunk.text:
                    first = time.perf_counter() - t0
            turns.append(time.perf_counter() - t0)
            firsts.append(first if first is not None else turns[-1])
            for j in range(3):
                t0 = time.perf_counter()
                engine.feedback(session, 1 + (i + j) % len(session.shown), events[(i + j) % len(events)])
                feedbacks.append(time.perf_counter() - t0)
                reranks.append(engine.last_rerank_s)
            if i % 10 == 9:
                engine.reset(session)  # keep the profile from growing without bound
        engine.state.close()
    prefix = "chat_llm" if backend is not None else "chat_no_llm"
    figures = {
        f"{prefix}_turn": percentiles(turns),
        f"{prefix}_rerank_after_feedback": percentiles(reranks),
        f"{prefix}_feedback_incl_sqlite_write": percentiles(feedbacks),
        f"{prefix}_turns": n,
    }
    if backend is not None:
        figures[f"{prefix}_first_explanation_token"] = percentiles(firsts)
    return figures
