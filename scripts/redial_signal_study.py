"""How far more signals could take ReDial recall: a learned model over the whole catalogue (a study, not the product).

    CHATREC_DATA_DIR=D python scripts/redial_signal_study.py --redial ../shared/data/redial [--json]

Every ReDial case of the ``chatrec tune`` cross-validation (600 conversations, 5 folds, everyone's behaviour
built without the case's fold) goes through the product's path once: extractor → profile → query → user vector,
collaborative scores from the MovieLens and co-mention logs, liked/disliked tag shares. From those, and from
more signals the product does not use, each case gets a feature vector for *every* catalogue item (no candidate
pool). A multinomial logit over the catalogue (the target's log-probability among the items not mentioned
earlier, L2 1e-3, fitted with L-BFGS on four folds) is then scored on the fifth: held-out R@1/10/50 pooled
over all pairs, ± the spread over folds.

The base set is the product's own signals (raw cosine, mention prior, the two collaborative logs, liked and
disliked tag shares). Each further group is added to the base alone, then all together:

* ``title view``: the cosine to a second embedding of each item, ``"Title (Year). Genres: A, B"`` (the index
  embeds the overview, where the title and genres are a few words among many).
* ``seed genres``: the share of the genres of the conversation's seeds (liked and earlier-named movies,
  weighted as the collaborative part weighs them) that the item carries.
* ``seed similarity``: the item's highest embedding cosine to a seed.
* ``engagement``: log MovieLens rating count, TMDB popularity and vote count.
* ``EASE``: an EASE item-item model (λ 300) on MovieLens, all ratings as interactions, seeded like B.
* ``release × time``: item year 2017 / 2018 × five bins of the conversation id (ReDial ids follow collection
  time: a 2018 film cannot be named in an early conversation).
* ``no genres``: the item has no metadata (title-only).
* ``genre model``: the log-likelihood of the item's genre set under 18 logistic regressions that predict the
  target's genres from the seeker's liked/disliked tags and the seeds' genres (cross-fitted inside the
  training folds).
* ``franchise``: the item shares a title up to its subtitle with an earlier-mentioned movie.

An oracle row (not a system) adds one genre of the target, known for sure, to show how much a better reading
of what the recommender will pick next would be worth.

A last pair of rows keeps the product's shape (candidate pool, S min-max rescaled over it, B = (1 − β)·prior +
β·collaborative, the penalty as is, weights ≥ 0) and adds only the title view and the seed genres, to show what
of the gain would survive inside ``I = wS·S + wB·B + wC·C``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from chatrec.app import App
from chatrec.recommend.behaviour import read_interactions
from chatrec.core.items import tag_key
from chatrec.eval import redial, tuning
from chatrec.eval.redial import main_title
from chatrec.settings import Settings

FOLDS = 5
YEAR_BINS = ((0, 3000), (3000, 6000), (6000, 10000), (10000, 14000), (14000, 10**9))


class Study:
    def __init__(self, args):
        settings = Settings(llm="none", use_tuned=False)
        self.movies = redial.load_movies(args.redial / "movies_with_mentions.csv")
        self.app = App(settings)
        setup = redial.setup(self.app, args.redial / "movies_with_mentions.csv")
        self.rec, extractor, items = setup.recommender, setup.extractor, setup.items
        self.settings = settings
        convs = [c for name in ("train_500.jsonl", "valid_100.jsonl")
                 for c in redial.load_conversations(args.redial / name)]
        likes = read_interactions(settings.interactions, settings.liked_rating) if settings.interactions else []
        tuner = tuning.Tuner(self.rec, extractor, convs, self.movies, items, likes, k=FOLDS)
        cat = self.rec.catalogue
        self.n = len(cat.ids)
        self.source = {it.id: it.extra.get("source_id") for it in items if it.extra}
        ranker = redial.ProductRanker(self.rec, extractor, fresh_only=True)
        per_case = {k: [] for k in ("cos", "content", "dislike", "ml", "cm", "pool", "prior")}
        self.fold, self.targets, self.excluded, self.seeds, self.tags, self.cid, self.vectors = [], [], [], [], [], [], []
        for g in range(FOLDS):
            tuner.use_fold_behaviour(g, tuning.Variant("full"))
            logs = dict((log.name, log) for log, _ in self.rec.behaviour.logs)
            for fold, case in tuner.cases:
                if fold != g:
                    continue
                q = ranker.query(case)
                v = self.rec.user_vector(q)
                seeds = self._seeds(q)
                per_case["cos"].append(cat.matrix @ v if v is not None else np.zeros(self.n, np.float32))
                per_case["content"].append(cat.tag_share(cat.tag_matrix, q.liked_tags))
                per_case["dislike"].append(cat.tag_share(cat.tag_matrix, q.disliked_tags))
                for name, key in (("movielens-likes", "ml"), ("redial-co-mentions", "cm")):
                    s = logs[name].scores(seeds) if seeds and name in logs else None
                    per_case[key].append(np.full(self.n, np.nan) if s is None else s)
                collab = self.rec.collaborative(q)
                pool = np.zeros(self.n, bool)
                pool[self.rec.retrieve(q, v, collab)] = True
                per_case["pool"].append(pool)
                per_case["prior"].append(self.rec.prior)
                self.fold.append(g)
                self.targets.append([cat.index_of[t] for t in case.targets if t in cat.index_of])
                self.excluded.append([cat.index_of[t] for t in case.earlier if t in cat.index_of])
                self.seeds.append(seeds)
                self.tags.append((dict(q.liked_tags), dict(q.disliked_tags)))
                self.cid.append(int(case.conversation))
                self.vectors.append(v if v is not None else np.zeros(cat.matrix.shape[1], np.float32))
        self.f = {k: np.stack(v).astype(np.float32 if k != "pool" else bool) for k, v in per_case.items()}
        self.fold = np.array(self.fold)
        self.c = len(self.fold)
        self.excl = np.zeros((self.c, self.n), bool)
        for c, rows in enumerate(self.excluded):
            self.excl[c, rows] = True
        self.pair_fold = np.array([self.fold[c] for c in range(self.c) for _ in self.targets[c]])
        self._items(cat, args)

    def _seeds(self, q) -> dict[int, float]:
        index_of = self.rec.catalogue.index_of
        seeds = {index_of[i]: w for i, w in q.context_items.items() if i in index_of and w > 0}
        seeds.update({index_of[i]: w for i, w in q.liked_items.items() if i in index_of and w > 0})
        return seeds

    def _items(self, cat, args) -> None:
        """Per-item data the extra signals need: genres, years, the title view, MovieLens/TMDB fields."""
        items = [cat.item(r) for r in range(cat.n)]
        self.genres = sorted({g for it in items for g in it.genres})
        self.g = np.zeros((self.n, len(self.genres)), np.float32)
        for n, it in enumerate(items):
            for gname in it.genres:
                self.g[n, self.genres.index(gname)] = 1
        self.year = np.array([it.year or 0 for it in items], float)
        self.matrix = cat.matrix
        texts = [f"{it.title}" + (f" ({it.year})" if it.year else "") + (f". Genres: {', '.join(it.genres)}" if it.genres else "")
                 for it in items]
        t0 = time.perf_counter()
        self.title_view = self.app.embedder.encode(texts).astype(np.float32)
        self.title_view_seconds = time.perf_counter() - t0
        enriched = {json.loads(line)["id"]: json.loads(line) for line in Path(self.settings.catalog).open()}
        self.rows_of: dict[str, list[int]] = {}
        for n, it in enumerate(items):
            if self.source.get(it.id):
                self.rows_of.setdefault(str(self.source[it.id]), []).append(n)
        def field(name):
            return np.array([float((enriched.get(str(self.source.get(it.id))) or {}).get(name) or 0) for it in items])
        self.n_ratings, self.tmdb_pop, self.tmdb_votes = field("n_ratings"), field("tmdb_popularity"), field("tmdb_vote_count")
        self.main_titles = [main_title(it.title) for it in items]

    # -- signals, each (cases × items) ---------------------------------------------------------
    def items_wide(self, v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(v.astype(np.float32)[None, :], (self.c, self.n))

    def title_view_cos(self) -> np.ndarray:
        return np.stack(self.vectors).astype(np.float32) @ self.title_view.T

    def seed_genres(self) -> np.ndarray:
        out = np.zeros((self.c, self.n), np.float32)
        for c, seeds in enumerate(self.seeds):
            v = sum((self.g[r] * w for r, w in seeds.items()), np.zeros(len(self.genres), np.float32))
            if v.sum() > 0:
                out[c] = self.g @ (v / v.sum())
        return out

    def seed_similarity(self) -> np.ndarray:
        out = np.zeros((self.c, self.n), np.float32)
        for c, seeds in enumerate(self.seeds):
            if seeds:
                out[c] = (self.matrix @ self.matrix[list(seeds)].T).max(1)
        return out

    def ease(self, lam: float = 300.0) -> np.ndarray:
        from scipy.sparse import csr_matrix

        users: dict[str, int] = {}
        rows, cols = [], []
        for user, movie in read_interactions(self.settings.interactions, liked_at=0.0):
            for n in self.rows_of.get(movie, ()):
                rows.append(users.setdefault(user, len(users)))
                cols.append(n)
        x = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users), self.n))
        x.data[:] = 1.0
        gram = (x.T @ x).toarray()
        active = np.flatnonzero(np.diag(gram) > 0)
        p = np.linalg.inv(gram[np.ix_(active, active)] + lam * np.eye(len(active)))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        full = np.zeros((self.n, self.n), np.float32)
        full[np.ix_(active, active)] = b
        out = np.zeros((self.c, self.n), np.float32)
        for c, seeds in enumerate(self.seeds):
            if seeds:
                rows_ = list(seeds)
                out[c] = np.array([seeds[r] for r in rows_], np.float32) @ full[rows_]
        return out / (np.abs(out).max(1, keepdims=True) + 1e-9)

    def release_time(self) -> dict[str, np.ndarray]:
        cid = np.array(self.cid)
        return {f"y{y}_{lo}": ((cid >= lo) & (cid < hi)).astype(np.float32)[:, None] * (self.year == y)[None, :].astype(np.float32)
                for y in (2017, 2018) for lo, hi in YEAR_BINS}

    def franchise(self) -> np.ndarray:
        by_main: dict[str, list[int]] = {}
        for n, t in enumerate(self.main_titles):
            by_main.setdefault(t, []).append(n)
        out = np.zeros((self.c, self.n), np.float32)
        for c, rows in enumerate(self.excluded):
            for r in rows:
                out[c, [m for m in by_main.get(self.main_titles[r], ()) if m != r]] = 1
        return out

    def oracle_genre(self) -> np.ndarray:
        """1 for the items that carry one genre (drawn at random, seed 0) of the case's first target: what
        perfect reading of one genre of the recommender's next pick would be worth (a ceiling, not a system)."""
        rng = np.random.default_rng(0)
        out = np.zeros((self.c, self.n), np.float32)
        for c, targets in enumerate(self.targets):
            genres = np.flatnonzero(self.g[targets[0]]) if targets else []
            if len(genres):
                out[c] = self.g[:, rng.choice(genres)]
        return out

    def genre_model_ll(self) -> dict[int, np.ndarray]:
        """Per outer fold g: each case's log-likelihood of every item's genre set, from 18 logistic regressions
        predicting the target's genres (test fold: trained on the other folds; training folds: cross-fitted)."""
        keys = [tag_key(g) for g in self.genres]
        x = []
        for c in range(self.c):
            liked, disliked = self.tags[c]
            v = sum((self.g[r] * w for r, w in self.seeds[c].items()), np.zeros(len(keys), np.float32))
            x.append(np.concatenate([[liked.get(k, 0.0) for k in keys], [disliked.get(k, 0.0) for k in keys],
                                     v / v.sum() if v.sum() else v, [1.0]]))
        x = np.array(x)
        out = {}
        for g in range(FOLDS):
            probs = np.zeros((self.c, len(keys)))
            for h in range(FOLDS):
                test = np.flatnonzero(self.fold == h)
                train = [c for c in range(self.c) if self.fold[c] not in (g, h)] if h != g else \
                    [c for c in range(self.c) if self.fold[c] != g]
                probs[test] = self._genre_probs(x, train, test)
            lp, lq = np.log(np.clip(probs, 1e-4, 1)), np.log(np.clip(1 - probs, 1e-4, 1))
            out[g] = ((lp @ self.g.T + lq @ (1 - self.g).T) / 10).astype(np.float32)
        return out

    def _genre_probs(self, x, train, test, l2: float = 1.0) -> np.ndarray:
        rows = [(c, t) for c in train for t in self.targets[c] if self.g[t].sum()]
        xt, y = x[[c for c, _ in rows]], self.g[[t for _, t in rows]]
        out = np.zeros((len(test), y.shape[1]))
        for j in range(y.shape[1]):
            def loss(w, yj=y[:, j]):
                z = xt @ w
                p = 1 / (1 + np.exp(-z))
                return (np.logaddexp(0, z) - yj * z).mean() + l2 * w[:-1] @ w[:-1] / len(yj), \
                    xt.T @ (p - yj) / len(yj) + 2 * l2 * np.append(w[:-1], 0) / len(yj)
            w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
            out[:, j] = 1 / (1 + np.exp(-x[test] @ w))
        return out

    # -- the model -----------------------------------------------------------------------------
    def fit(self, x: np.ndarray, cases, l2=1e-3, nonneg=False, pool=False) -> np.ndarray:
        d = x.shape[2]

        def loss(w):
            total, grad, n = 0.0, np.zeros(d), 0
            w32 = w.astype(np.float32)
            for c in cases:
                keep = ~self.excl[c] & (self.f["pool"][c] if pool else True)
                hit = [t for t in self.targets[c] if keep[t]]
                if not hit:
                    continue
                s = np.where(keep, x[c] @ w32, -np.inf)
                top = s.max()
                e = np.exp(s - top)
                z = e.sum()
                expected = (e / z) @ x[c]
                for t in hit:
                    total -= s[t] - top - np.log(z)
                    grad -= x[c][t] - expected
                    n += 1
            return total / n + l2 * w @ w, grad / n + 2 * l2 * w

        bounds = [(0, None)] * d if nonneg else None
        return minimize(loss, np.ones(d) if nonneg else np.zeros(d), jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": 300}).x

    def held_out(self, build, nonneg=False, pool=False) -> dict:
        """``build(g)``: the (cases × items × d) features as outer fold g sees them."""
        ranks = np.full(len(self.pair_fold), np.inf)
        for g in range(FOLDS):
            x = build(g)
            w = self.fit(x, [c for c in range(self.c) if self.fold[c] != g], nonneg=nonneg, pool=pool)
            out = []
            for c in range(self.c):
                if self.fold[c] != g:
                    out.extend([np.inf] * len(self.targets[c]))
                    continue
                s = (x[c] @ w.astype(np.float32)).astype(np.float64)
                s[self.excl[c]] = -np.inf
                if pool:
                    s[~self.f["pool"][c]] = -np.inf
                out.extend([1 + (s > s[t]).sum() if np.isfinite(s[t]) else np.inf for t in self.targets[c]])
            ranks[self.pair_fold == g] = np.array(out)[self.pair_fold == g]
        row = {f"recall@{k}": round(float(np.mean(ranks <= k)), 4) for k in (1, 10, 50)}
        for k in (1, 10, 50):
            row[f"recall@{k}_sd"] = round(float(np.std([np.mean(ranks[self.pair_fold == g] <= k) for g in range(FOLDS)])), 4)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redial", type=Path, default=Path("..") / "shared" / "data" / "redial")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    s = Study(args)
    f = s.f
    base = {"cos": f["cos"], "prior": f["prior"], "ml": np.nan_to_num(f["ml"]), "cm": np.nan_to_num(f["cm"]),
            "content": f["content"], "dislike": f["dislike"]}
    groups = {
        "title view": {"title_view": s.title_view_cos()},
        "seed genres": {"seed_genres": s.seed_genres()},
        "seed similarity": {"seed_similarity": s.seed_similarity()},
        "engagement": {"ml_ratings": s.items_wide(np.log1p(s.n_ratings) / 6), "tmdb_pop": s.items_wide(np.log1p(s.tmdb_pop) / 6),
                       "tmdb_votes": s.items_wide(np.log1p(s.tmdb_votes) / 10)},
        "EASE": {"ease": s.ease()},
        "release × time": s.release_time(),
        "no genres": {"no_genres": s.items_wide((s.g.sum(1) == 0).astype(float))},
        "franchise": {"franchise": s.franchise()},
    }
    genre_ll = s.genre_model_ll()

    def stack(parts: dict, ll: bool = False):
        """The builder held_out needs: the features stacked once; the genre model's column is per outer fold."""
        x = np.empty((s.c, s.n, len(parts) + ll), np.float32)
        for j, k in enumerate(parts):
            x[:, :, j] = parts[k]

        def build(g: int) -> np.ndarray:
            if ll:
                x[:, :, -1] = genre_ll[g]
            return x
        return build

    rows = [{"signals": "the product's signals (base)", **s.held_out(stack(base))}]
    for name, parts in groups.items():
        rows.append({"signals": f"base + {name}", **s.held_out(stack({**base, **parts}))})
    rows.append({"signals": "base + genre model", **s.held_out(stack(base, ll=True))})
    everything = dict(base)
    for parts in groups.values():
        everything.update(parts)
    rows.append({"signals": "base + all of the above", **s.held_out(stack(everything, ll=True))})
    rows.append({"signals": "oracle, not a system: base + one of the target's genres, known", **s.held_out(stack(
        {**base, "oracle_genre": s.oracle_genre()}))})
    # the product's shape: pool, S rescaled, B = (1 - β) prior + β collab, penalty as is, weights >= 0
    pool = f["pool"]

    def rescale(x):
        lo = np.where(pool, x, np.inf).min(1, keepdims=True)
        hi = np.where(pool, x, -np.inf).max(1, keepdims=True)
        return ((x - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)

    ml, cm = f["ml"], f["cm"]
    known = (~np.isnan(ml)).astype(np.float32) + (~np.isnan(cm)).astype(np.float32)
    collab = np.where(known > 0, (np.nan_to_num(ml) + np.nan_to_num(cm)) / np.maximum(known, 1), np.nan)
    penalty = np.minimum(f["dislike"], 1)
    shaped = {"S": rescale(f["cos"]), "B_prior_alone": np.where(np.isnan(collab), f["prior"], 0),
              "B_prior": np.where(np.isnan(collab), 0, f["prior"]), "B_collab": np.nan_to_num(collab), "C": f["content"]}
    shaped_plus = {**shaped, "S_title_view": rescale(groups["title view"]["title_view"]),
                   "C_seed_genres": groups["seed genres"]["seed_genres"]}
    for name, parts in (("the product's shape, weights fitted by the logit", shaped),
                        ("… + the title view in S and the seed genres in C", shaped_plus)):
        x = np.stack([v - penalty for v in parts.values()], -1).astype(np.float32)
        rows.append({"signals": name, **s.held_out(lambda g: x, nonneg=True, pool=True)})
    if args.json:
        print(json.dumps({"cases": s.c, "pairs": len(s.pair_fold), "seconds": round(time.perf_counter() - t0),
                          "title_view_embed_seconds": round(s.title_view_seconds, 1), "rows": rows}, indent=2))
        return
    print(f"{s.c} cases, {len(s.pair_fold)} pairs, 5-fold held-out; title view embedded in {s.title_view_seconds:.0f} s")
    print(f"{'signals':58s} {'R@1':>12s} {'R@10':>12s} {'R@50':>12s}")
    for r in rows:
        print(f"{r['signals']:58s} " + " ".join(f"{r[f'recall@{k}']:.3f} ± {r[f'recall@{k}_sd']:.3f}" for k in (1, 10, 50)))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
