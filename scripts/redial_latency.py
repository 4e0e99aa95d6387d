"""Latency of the ranking path on ReDial cases under each behaviour configuration of the ablation.

    CHATREC_DATA_DIR=D python scripts/redial_latency.py --redial ../shared/data/redial [--cases 250 --rounds 3]

Prints p50/p95 of ``Recommender.recommend(query, k=50)`` per configuration × weights, all interleaved in one
process. Query embeddings are warmed first (the embedder caches them), so the figures isolate the ranking path;
the query embedding adds its own floor (see ``chatrec bench``) to every row alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from chatrec.app import App
from chatrec.eval import redial, tuning
from chatrec.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redial", type=Path, default=Path("..") / "shared" / "data" / "redial")
    parser.add_argument("--cases", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings(llm="none", use_tuned=False)
    setup = redial.setup(App(settings), args.redial / "movies_with_mentions.csv")
    rec, extractor = setup.recommender, setup.extractor
    train = redial.load_conversations(args.redial / "train_500.jsonl")
    scored = redial.load_conversations(args.redial / "valid_100.jsonl")
    # k=2 folds over train + scored: fold 1 holds every other conversation; its behaviour excludes them
    tuner = tuning.Tuner.for_setup(setup, settings, train + scored, k=2)
    cases = [case for conv in scored for case in redial.cases(conv, True)][: args.cases]
    queries = {seed: [redial.ProductRanker(rec, extractor, True, context_seed=seed).query(c) for c in cases]
               for seed in (0.0, settings.context_seed)}
    variants = [tuning.Variant("before", mention_prior=False, movielens=False, co_mentions=False, context_seed=0.0),
                tuning.Variant("+ mention prior", movielens=False, co_mentions=False, context_seed=0.0),
                tuning.Variant("+ MovieLens", co_mentions=False, context_seed=0.0),
                tuning.Variant("+ co-mentions", context_seed=0.0),
                tuning.Variant("+ earlier picks", context_seed=settings.context_seed)]
    tuned = Settings(llm="none").weights("redial-movies")
    weights = {"paper": settings.weights(), "tuned": tuned}
    for q in queries[0.0]:
        rec.user_vector(q)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for variant in variants:
            tuner.use_fold_behaviour(1, variant)
            for name, w in weights.items():
                rec.weights = w
                for q in queries[variant.context_seed]:
                    t0 = time.perf_counter()
                    rec.recommend(q, k=50)
                    times.setdefault((variant.name, name), []).append(time.perf_counter() - t0)
    for (variant, name), ts in times.items():
        print(f"{variant:16} {name:6} p50 {np.percentile(ts, 50) * 1000:6.1f} ms  "
              f"p95 {np.percentile(ts, 95) * 1000:6.1f} ms  n={len(ts)}")


if __name__ == "__main__":
    main()
