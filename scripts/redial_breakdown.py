"""Where the ReDial fresh-only misses are: held-out recall by the target's popularity and catalogue match.

    CHATREC_DATA_DIR=D python scripts/redial_breakdown.py --redial ../shared/data/redial [--json]

The same 5-fold cross-validation as ``chatrec tune`` (the product's ranking, weights fitted on the other
folds, everyone's behaviour built without the held-out fold), over train_500 + valid_100; each held-out
(case, target) pair is then grouped by the target's mention count in the ReDial movie file, by whether it
joined the enriched catalogue (genres, overview, MovieLens likes) or stayed title-only, and by what the
seeker had said before the case. "pool" is the share of targets that are in the candidate pool at all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from chatrec.app import App
from chatrec.eval import redial, tuning
from chatrec.settings import Settings

MENTION_BANDS = ((0, 5), (5, 20), (20, 60), (60, 200), (200, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redial", type=Path, default=Path("..") / "shared" / "data" / "redial")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings(llm="none", use_tuned=False)
    movies = redial.load_movies(args.redial / "movies_with_mentions.csv")
    setup = redial.setup(App(settings), args.redial / "movies_with_mentions.csv")
    items = setup.items
    convs = [c for name in ("train_500.jsonl", "valid_100.jsonl")
             for c in redial.load_conversations(args.redial / name)]
    tuner = tuning.Tuner.for_setup(setup, settings, convs, k=5)
    variant = tuning.Variant("full")
    folds = tuner.prepare(variant)
    result = tuner.cross_validate(variant, settings.weights(), folds=folds)

    mentions = {m[0]: m[3] for m in movies}
    joined = {it.id for it in items if it.extra}
    # the queries the folds were built from (the tuner caches them by conversation, context length and γ)
    said = {(conv, n): q for (conv, n, *_), q in tuner._queries.items()}
    pairs = []
    for g, fold in enumerate(folds):
        weights = tuning.weights_of(result.per_fold[g]["weights"], settings.weights())
        held = [case for f, case in tuner.cases if f == g]
        for case, prepared in zip(held, fold.prepared):
            query = said[(case.conversation, len(case.context))]
            for target, rank in zip(prepared.targets, tuning.score([prepared], weights)):
                pairs.append({"rank": rank, "in_pool": target in prepared.features.pool.position,
                              "mentions": mentions.get(target, 0), "joined": target in joined,
                              "liked_items": bool(query.liked_items), "liked_tags": bool(query.liked_tags)})

    def row(name: str, keep) -> dict:
        sel = [p for p in pairs if keep(p)]
        hit = lambda k: float(np.mean([p["rank"] is not None and p["rank"] <= k for p in sel])) if sel else 0.0
        return {"group": name, "pairs": len(sel), "share": round(len(sel) / len(pairs), 3),
                "recall@10": round(hit(10), 3), "recall@50": round(hit(50), 3),
                "pool": round(float(np.mean([p["in_pool"] for p in sel])) if sel else 0.0, 3)}

    rows = [row("all", lambda p: True),
            row("joined to the enriched catalogue", lambda p: p["joined"]),
            row("title-only", lambda p: not p["joined"])]
    for lo, hi in MENTION_BANDS:
        rows.append(row(f"{lo}{'+' if hi is None else f'–{hi - 1}'} mentions",
                        lambda p, lo=lo, hi=hi: p["mentions"] >= lo and (hi is None or p["mentions"] < hi)))
    rows += [row("seeker named liked movies before", lambda p: p["liked_items"]),
             row("seeker named only genres/tags", lambda p: not p["liked_items"] and p["liked_tags"]),
             row("seeker named nothing yet", lambda p: not p["liked_items"] and not p["liked_tags"])]
    if args.json:
        print(json.dumps({"pooled": result.pooled, "rows": rows}, indent=2))
        return
    print(f"pooled held-out R@1/10/50: {result.pooled['recall@1']:.3f} / {result.pooled['recall@10']:.3f} / "
          f"{result.pooled['recall@50']:.3f} over {result.pooled['n_pairs']} pairs")
    print(f"{'target group':36s} {'pairs':>6s} {'share':>6s} {'R@10':>6s} {'R@50':>6s} {'pool':>6s}")
    for r in rows:
        print(f"{r['group']:36s} {r['pairs']:6d} {r['share']:6.2f} {r['recall@10']:6.3f} {r['recall@50']:6.3f} "
              f"{r['pool']:6.3f}")


if __name__ == "__main__":
    main()
