"""`chatrec bench --items N`: the product at N items, on a synthetic catalogue made from the real one.

The catalogue: copy k of real item j (item number k·B + j, B the real catalogue's size) keeps j's genres, tags,
keywords, people, year and runtime; its id is j's for k = 0 and "{id}~{k}" after, its title gets " #{k+1}", its
text says which variant it is, and its rating counts are divided by k + 1 (copies are less known, as a long
tail is). Embedding a million texts on 2 cores would take hours, so the vectors are made, not embedded: copy k
of item j is ``normalise(v_j + NOISE · g / √d)`` with v_j the real item's MiniLM vector and g a standard normal
draw seeded by the item's number: its cosine to the original is ≈ 0.94, so copies stay distinct and near their
original (a query still finds the right neighbourhood, among many close variants).

The index is built through the product's own path (`CatalogueIndex.build`, with those vectors in place of the
embedder) into the collection ``synthetic-N`` under ``CHATREC_DATA_DIR``; a second run with the same N and data
dir finds it ready and reuses it (``index_reused``). The figures are then measured in a new process that opens
the index: ``ready_s`` is from its start to its first answer, ``rss_mb`` its peak resident memory, and the usual
keys (``recommend``, ``floor_chroma_top50``, ``chat_no_llm_rerank_after_feedback``, ...) as in ``chatrec bench``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from chatrec.core.items import Item

NOISE = 0.35


def synthetic_items(base: Sequence[Item], n: int) -> list[Item]:
    out = []
    size = len(base)
    for i in range(n):
        k, j = divmod(i, size)
        it = base[j]
        if k == 0:
            out.append(it)
            continue
        out.append(replace(it, id=f"{it.id}~{k}", title=f"{it.title} #{k + 1}", aka=(),
                           text=f"{it.text} (Variant {k + 1} of this story.)",
                           n_ratings=it.n_ratings // (k + 1), recent_ratings=it.recent_ratings // (k + 1)))
    return out


def synthetic_vectors(base_vectors: np.ndarray, numbers: Sequence[int]) -> np.ndarray:
    """The vectors of items ``numbers`` (positions in the synthetic catalogue), deterministic per item."""
    size, dim = base_vectors.shape
    out = np.empty((len(numbers), dim), dtype=np.float32)
    for row, i in enumerate(numbers):
        k, j = divmod(int(i), size)
        v = np.asarray(base_vectors[j], dtype=np.float64)
        if k:
            v = v + NOISE * np.random.default_rng(i).standard_normal(dim) / np.sqrt(dim)
        out[row] = v / np.linalg.norm(v)
    return out


def build(app, n: int, progress=None) -> dict:
    """The synthetic catalogue of ``n`` items indexed in ``synthetic-N`` (reused when already built)."""
    from chatrec.catalogue.index import fingerprint_of

    base = app.catalogue  # the real catalogue's columns: its items and their MiniLM vectors
    base_items = base.items(range(base.n))
    items = synthetic_items(base_items, n)
    scale = app.for_collection(f"synthetic-{n}")
    expected = fingerprint_of([(it.id, it.content_hash()) for it in items])
    meta = scale.index.info()
    if meta.get("state") == "ready" and meta.get("fingerprint") == expected:
        return {"items": n, "index_reused": True, "collection": scale.collection}
    number = {it.id: i for i, it in enumerate(items)}
    base_vectors = np.asarray(base.vectors)
    t0 = time.perf_counter()
    report = scale.index.build(items, source=f"synthetic:{n}", progress=progress,
                               vectors=lambda batch: synthetic_vectors(base_vectors, [number[it.id] for it in batch]))
    seconds = time.perf_counter() - t0
    return {"items": n, "index_reused": False, "collection": scale.collection,
            "index_items_per_s": round(n / seconds, 1), "index_build_s": round(seconds, 1),
            "index_embedded": report.embedded}


def measure(collection: str, n_queries: int = 200) -> dict:
    """In this (new) process: open the index, answer once (ready), then the usual speed figures."""
    from chatrec.app import App
    from chatrec.bench import percentiles, queries, run_chat
    from chatrec.recommend.query import Query
    from chatrec.settings import Settings

    started = time.time()
    app = App(Settings(llm="none"), collection)
    app.one_shot.recommend("a space adventure", k=10)
    ready_s = time.time() - float(os.environ.get("BENCH_PROCESS_STARTED", started))
    rec, embedder, index = app.recommender, app.embedder, app.vector_index
    texts = queries(n_queries)
    embed_t = _timed(lambda t: embedder.encode([t]), [f"floor {t}" for t in texts])
    vecs = [embedder.encode([f"probe {t}"])[0] for t in texts[:100]]
    index_t = _timed(lambda v: index.query(v, 50), vecs)
    rec_t = _timed(lambda t: rec.recommend(Query(text=t), k=10), [f"rec {t}" for t in texts])
    turn_t = _timed(lambda t: app.one_shot.recommend(t, k=10), [f"turn {t}" for t in texts[:100]])
    wish_t = _timed(lambda t: app.one_shot.recommend(t, k=10),
                    [f"a {g} film from the {d}0s #{i}" for i, (g, d) in
                     enumerate(zip(["comedy", "horror", "western", "drama"] * 25, [7, 8, 9, 0] * 25))])
    figures = {
        "items": app.catalogue.n,
        "ready_s": round(ready_s, 2),
        "floor_query_embedding": percentiles(embed_t),
        "floor_chroma_top50": percentiles(index_t),
        "recommend": percentiles(rec_t),
        "recommend_text_turn": percentiles(turn_t),
        "recommend_with_constraints": percentiles(wish_t),
    }
    floor = figures["floor_query_embedding"]["p50_ms"] + figures["floor_chroma_top50"]["p50_ms"]
    figures["recommend_p50_over_floor"] = round(figures["recommend"]["p50_ms"] / floor, 2) if floor else None
    figures["recommend_p95_over_floor_p95"] = round(figures["recommend"]["p95_ms"] / (
        figures["floor_query_embedding"]["p95_ms"] + figures["floor_chroma_top50"]["p95_ms"]), 2)
    figures.update(run_chat(app, app.engine_with(llm=False), n=40))
    figures["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def _timed(fn, args, warmup: int = 5) -> list[float]:
    for a in args[:warmup]:
        fn(a)
    out = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t0)
    return out


def run(app, n: int, progress=None) -> dict:
    """Build (or reuse) the synthetic catalogue of ``n`` items, then measure it in a new process."""
    figures = build(app, n, progress)
    env = {**os.environ, "BENCH_PROCESS_STARTED": repr(time.time())}
    proc = subprocess.run([sys.executable, "-m", "chatrec.bench_scale", figures["collection"]], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring process failed: {proc.stderr.strip()[-2000:]}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**measured, **{k: v for k, v in figures.items() if k != "items"},
            "chroma": app.settings.chroma_url or "embedded"}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(measure(sys.argv[1])) + "\n")
