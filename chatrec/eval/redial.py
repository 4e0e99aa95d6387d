"""ReDial evaluation, following the standardised re-evaluation protocol (Kostric & Balog, SIGIR 2026).

* A case is a respondent (recommender) message that mentions at least one movie (``@id`` with the
  id a key of ``movieMentions``) and has at least one earlier message; every movie it mentions is
  one (case, ground truth) pair. With ``fresh_only``, only movies not mentioned earlier count.
* The system sees only the earlier messages, with ``@id`` replaced by the movie's name, and ranks
  all ReDial movies (movies mentioned earlier are left out when ``fresh_only``).
* Metrics: Recall@1/10/50, NDCG@10, MRR (over the top 50; a miss counts 0).

The ranking is the product's own path: each earlier seeker message goes through the same
extractor and profile update as ``chatrec chat``; the request text is the recent context; the
recommender retrieves and ranks with the fused score. The ReDial movies are joined to the
enriched catalogue (MovieLens/TMDB) by normalised title + year, title-only where no match exists.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from chatrec.core import profile as prof
from chatrec.core.items import Item
from chatrec.eval.movielens import ndcg, rank_of
from chatrec.reading.titles import normalise_title

MENTION = re.compile(r"@(\d+)")
#: the co-mentions of the 1,401 ReDial training conversations we have (chatrec/builders/redial.py)
BUNDLED_CO_MENTIONS = Path(__file__).resolve().parent.parent.parent / "data" / "redial" / "co_mentions.csv.gz"
NAME = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
KS = (1, 10, 50)
CONTEXT_MESSAGES = 4

PUBLISHED_FRESH = {  # fresh-only (dedup) R@1 / R@10 / R@50, from the issue
    "KBRD": (0.017, 0.148, 0.300), "KGSF": (0.016, 0.147, 0.327), "UniCRS": (0.024, 0.180, 0.335),
    "MESE": (0.025, 0.159, 0.361), "ReFICR": (0.018, 0.213, 0.465),
}


class RedialError(ValueError):
    pass


# -- data --------------------------------------------------------------------------------------
def load_conversations(path: Path, limit: int | None = None) -> list[dict]:
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                conv = json.loads(line)
                conv["messages"], conv["movieMentions"]  # noqa: B018 (shape check)
            except (ValueError, KeyError, TypeError) as exc:
                raise RedialError(f"{path}:{n}: not a ReDial conversation ({exc})") from None
            out.append(conv)
            if limit and len(out) >= limit:
                break
    return out


def parse_movie_name(name: str) -> tuple[str, int | None]:
    # the ReDial file URL-encodes some characters ("Why Him%3F (2016)"): decode, or the title never matches
    name = " ".join(unquote(name).split())
    m = NAME.match(name)
    return (m.group(1).strip(), int(m.group(2))) if m else (name.strip(), None)


def load_movies(path: Path) -> list[tuple[str, str, int | None, int]]:
    """(movieId, title, year, nbMentions) from ``movies_with_mentions.csv``."""
    rows = []
    with Path(path).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for n, row in enumerate(reader, 2):
            try:
                title, year = parse_movie_name(row["movieName"])
                rows.append((row["movieId"].strip(), title, year, int(row.get("nbMentions") or 0)))
            except (KeyError, ValueError, AttributeError) as exc:
                raise RedialError(f"{path}:{n}: bad movie row ({exc})") from None
    if not rows:
        raise RedialError(f"{path}: no movies")
    return rows


#: a title's main part, before its subtitle: "Borat: Cultural Learnings of ..." -> "Borat"
SUBTITLE = re.compile(r":| - | – ")
#: the third pass's fuzzy bar (rapidfuzz ratio of normalised titles): "Old Boy"/"Oldboy", "Vol. 2"/"Volume 2"
FUZZY_TITLE = 90


def main_title(title: str) -> str:
    return normalise_title(SUBTITLE.split(title, maxsplit=1)[0])


def title_heads(title: str) -> set[str]:
    """Every part of a title that ends before a subtitle: "Avengers: Infinity War - Part I" gives
    "avengers" and "avengers infinity war"."""
    return {normalise_title(title[:m.start()]) for m in SUBTITLE.finditer(title)} - {""}


def _loose_match(title: str, year: int | None, by_main, by_year, taken: set[str]) -> Item | None:
    """join_catalogue's third pass for one ReDial movie (see there)."""
    from rapidfuzz import fuzz

    key, main = normalise_title(title), main_title(title)
    if year is None:
        named = list(by_main.get(key, {}).values())
        return named[0] if len(named) == 1 and named[0].id not in taken else None
    same = {it.id: it for t, heads, it in by_year.get(year, ())
            if it.id not in taken and (key in heads or t == main)}
    if len(same) == 1:
        return next(iter(same.values()))
    # the same year only: "Day of the Dead (2008)" is not "Diary of the Dead (2007)"
    close: dict[str, tuple[float, Item]] = {}
    for t, _, it in by_year.get(year, ()):
        if it.id not in taken:
            r = fuzz.ratio(key, t)
            if r >= FUZZY_TITLE and r > close.get(it.id, (0.0, it))[0]:
                close[it.id] = (r, it)
    ranked = sorted(close.values(), key=lambda c: -c[0])
    return ranked[0][1] if ranked and (len(ranked) == 1 or ranked[0][0] > ranked[1][0]) else None


def _twin_match(title: str, year: int | None, by_title, by_main, taken: set[str]) -> Item | None:
    """join_catalogue's fourth pass for one ReDial movie (see there)."""
    key = normalise_title(title)
    named = {it.id: it for it in by_title.get(key, ()) if it.id in taken}
    if not named and year is None:
        named = {i: it for i, it in by_main.get(key, {}).items() if i in taken}
    return next(iter(named.values())) if len(named) == 1 else None


def join_catalogue(movies, enriched: Iterable[Item]) -> tuple[list[Item], dict]:
    """ReDial movies as catalogue items: enriched metadata where normalised title + year match
    (year ±1 as a second pass), title-only otherwise. Returns the items and the match counts.

    A third pass matches what the first two leave, against enriched items no other ReDial movie took:
    the same year and one title the other's without its subtitle ("Jumanji (2017)" is "Jumanji: Welcome to
    the Jungle (2017)"; no year: only when that main part names one film), else a near-identical
    title of the same year ("John Wick: Chapter 2" / "Chapter Two"), the closest if it is the only one.

    A fourth pass joins ReDial's duplicate ids: a movie still unmatched whose title (or, without a year, whose
    title up to a subtitle) names exactly one film that another ReDial movie already matched is that film
    under a second id, often with a wrong or missing year ("The Notebook (2013)" beside "The Notebook
    (2004)", "Anchorman" beside "Anchorman: The Legend of Ron Burgundy (2004)"): both ids get its metadata."""
    by_key: dict[tuple[str, int | None], Item] = {}
    by_title: dict[str, list[Item]] = {}
    by_main: dict[str, dict[str, Item]] = {}
    by_year: dict[int | None, list[tuple[str, set[str], Item]]] = {}
    for it in enriched:
        for t in (it.title, *it.aka):
            norm = normalise_title(t)
            by_key.setdefault((norm, it.year), it)
            by_title.setdefault(norm, []).append(it)
            by_main.setdefault(main_title(t), {})[it.id] = it
            by_year.setdefault(it.year, []).append((norm, title_heads(t), it))
    hits: list[Item | None] = []
    exact = near = 0
    for movie_id, title, year, mentions in movies:
        key = normalise_title(title)
        hit = by_key.get((key, year))
        if hit is not None:
            exact += 1
        elif year is not None:
            hit = by_key.get((key, year - 1)) or by_key.get((key, year + 1))
            near += hit is not None
        elif len(by_title.get(key, ())) == 1:  # no year given: only an unambiguous title
            hit = by_title[key][0]
            near += 1
        hits.append(hit)
    taken = {h.id for h in hits if h is not None}
    loose = 0
    for n, (movie_id, title, year, mentions) in enumerate(movies):
        if hits[n] is None and (hit := _loose_match(title, year, by_main, by_year, taken)) is not None:
            hits[n] = hit
            taken.add(hit.id)
            loose += 1
    twins = 0
    for n, (movie_id, title, year, mentions) in enumerate(movies):
        if hits[n] is None and (hit := _twin_match(title, year, by_title, by_main, taken)) is not None:
            hits[n] = hit
            twins += 1
    items = []
    for (movie_id, title, year, mentions), hit in zip(movies, hits):
        if hit is not None:
            items.append(Item(
                id=movie_id, title=title, year=year or hit.year, text=hit.text, tags=hit.tags, genres=hit.genres,
                keywords=hit.keywords, n_ratings=hit.n_ratings, mean_rating=hit.mean_rating,
                recent_ratings=hit.recent_ratings, popularity=float(mentions), aka=hit.aka,
                directors=hit.directors, cast=hit.cast, runtime=hit.runtime,  # people and length: hard wishes
                extra={"source_id": hit.id},  # the enriched item: its MovieLens likes become ReDial likes
            ))
        else:
            items.append(Item(id=movie_id, title=title, year=year, popularity=float(mentions)))
    matched = exact + near + loose + twins
    counts = {"movies": len(items), "matched": matched, "matched_exact": exact, "matched_near": near,
              "matched_loose": loose, "matched_twin": twins,
              "match_rate": round(matched / len(items), 4) if items else 0.0}
    return items, counts


#: the Chroma collection of the joined ReDial catalogue (the active collection of `chat` is left alone)
COLLECTION = "redial-movies"


@dataclass
class RedialSetup:
    """The ReDial catalogue joined to the product's, indexed in its own collection, with the product's
    recommender and extractor over it."""

    app: object  # chatrec.app.App over the ReDial collection
    movies: list  # (movieId, title, year, nbMentions) from movies_with_mentions.csv
    items: list[Item]
    match: dict

    @property
    def recommender(self):
        return self.app.recommender

    @property
    def extractor(self):
        return self.app.extractor


def setup(app, movies_path: Path, progress=None) -> RedialSetup:
    """The ReDial movies of ``movies_path`` joined to ``app``'s catalogue file (the enriched movies), indexed in
    the ReDial collection (the active collection of `chat` is left alone)."""
    from chatrec.catalogue.importer import load_catalog

    movies = load_movies(movies_path)
    items, match = join_catalogue(movies, load_catalog(app.settings.catalog))
    redial_app = app.for_collection(COLLECTION)
    redial_app.index.build(items, source=str(movies_path), progress=progress)
    return RedialSetup(redial_app, movies, items, match)


# -- everyone's behaviour, ReDial edition ----------------------------------------------------------
def conversation_items(conv: dict) -> list[str]:
    """The movies named in a conversation (by either side), first mention first."""
    ids: dict[str, None] = {}
    for msg in conv["messages"]:
        for i in MENTION.findall(msg.get("text", "")):
            if conv["movieMentions"].get(i):
                ids[i] = None
    return list(ids)


def mention_prior(movies, ids: list[str], minus: Counter | None = None) -> np.ndarray:
    """The popularity prior of the ReDial catalogue: ``log1p(mentions) / log1p(max)`` from the movies
    file's counts, less ``minus`` (the evaluated conversations' own mentions: a conversation must not
    raise the prior of the movies it is scored on)."""
    position = {i: n for n, i in enumerate(ids)}
    counts = np.zeros(len(ids))
    for movie_id, _, _, mentions in movies:
        if movie_id in position:
            counts[position[movie_id]] = mentions
    for movie_id, n in (minus or {}).items():
        if movie_id in position:
            counts[position[movie_id]] = max(counts[position[movie_id]] - n, 0)
    top = np.log1p(counts.max(initial=0))
    return np.log1p(counts) / top if top > 0 else counts


def co_mention_pairs(conversations: Iterable[dict]) -> list[tuple[str, str]]:
    """(conversation id, movie id) for every movie a conversation names: an interaction log row each."""
    return [(str(c.get("conversationId", n)), i) for n, c in enumerate(conversations) for i in conversation_items(c)]


def behaviour_logs(items: list[Item], index_of: dict[str, int], rating_likes, co_mentions=()):
    """The two interaction logs over the ReDial catalogue: MovieLens likes of each joined movie, and the
    movies named together in training conversations (``co_mentions``: (conversation id, movie id))."""
    from chatrec.recommend.behaviour import log_for

    joined: dict[str, list[int]] = {}
    for it in items:
        source = it.extra.get("source_id") if it.extra else None
        if source is not None and it.id in index_of:
            joined.setdefault(str(source), []).append(index_of[it.id])
    logs = [log_for("movielens-likes", rating_likes, joined, len(index_of))]
    if co_mentions:
        logs.append(log_for("redial-co-mentions", co_mentions, index_of, len(index_of)))
    return logs


# -- cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    conversation: str
    context: list[tuple[str, str]]  # (role, text with @id replaced by names), earlier messages only
    targets: list[str]  # ground-truth movie ids of this message
    earlier: set[str]  # movies mentioned before this message


def render(text: str, mentions: dict[str, str]) -> str:
    return MENTION.sub(lambda m: " ".join(mentions.get(m.group(1), m.group(0)).split()), text)


def cases(conv: dict, fresh_only: bool) -> Iterator[Case]:
    mentions = {k: v for k, v in conv["movieMentions"].items() if v}
    seeker = conv.get("initiatorWorkerId")
    respondent = conv.get("respondentWorkerId")
    context: list[tuple[str, str]] = []
    earlier: set[str] = set()
    for msg in conv["messages"]:
        ids = [i for i in dict.fromkeys(MENTION.findall(msg.get("text", ""))) if i in mentions]
        if msg.get("senderWorkerId") == respondent and ids and context:
            targets = [i for i in ids if not (fresh_only and i in earlier)]
            if targets:
                yield Case(str(conv.get("conversationId", "")), list(context), targets, set(earlier))
        role = "user" if msg.get("senderWorkerId") == seeker else "assistant"
        context.append((role, render(msg.get("text", ""), mentions)))
        earlier.update(ids)


# -- metrics -----------------------------------------------------------------------------------
def metrics(ranks: list[int | None]) -> dict:
    """``ranks``: the 1-based rank of each pair's movie in the top 50, or None."""
    n = len(ranks)
    out: dict[str, float | int] = {"n_pairs": n}
    for k in KS:
        out[f"recall@{k}"] = round(sum(1 for r in ranks if r is not None and r <= k) / n, 4) if n else 0.0
    out["ndcg@10"] = round(sum(ndcg(r, 10) for r in ranks) / n, 4) if n else 0.0
    out["mrr"] = round(sum(1 / r for r in ranks if r is not None) / n, 4) if n else 0.0
    return out


# -- the systems -------------------------------------------------------------------------------
class ProductRanker:
    """The chat path: extractor → turn plan → profile → retrieve → fused score, on the ReDial catalogue.

    The system plays the recommender: the movies the recommender named earlier are its own earlier picks,
    which seed the collaborative part as the chat engine's shown picks do (``context_seed``). With
    ``constraints``, the seeker's hard wishes (people, years, requested genres) filter the candidates as in
    the chat; without, only the soft wishes count (an ablation)."""

    def __init__(self, recommender, extractor, fresh_only: bool, context_seed: float = 0.5, constraints: bool = True):
        self.rec = recommender
        self.extractor = extractor
        self.fresh_only = fresh_only
        self.context_seed = context_seed
        self.constraints = constraints
        # cases of one conversation arrive in order: fold each message into the profile once
        self._state: tuple[str, int, prof.Profile, list[str]] = ("", 0, prof.Profile(), [])

    def profile(self, case: Case) -> tuple[prof.Profile, list[str]]:
        """The seeker's profile after the case's context, and the titles the recommender named so far."""
        from chatrec.core.dialogue import plan_turn

        conv, done, p, named = self._state
        if conv != case.conversation or done > len(case.context):
            done, p, named = 0, prof.Profile(), []
        for i in range(done, len(case.context)):
            role, text = case.context[i]
            if role == "user":
                prefs = self.extractor.extract(text, case.context[max(0, i - 4):i])
                # as in the chat engine (a bare mention leans liked; one the seeker has not seen stays out
                # of the profile, and a context seed if the recommender named it)
                plan = plan_turn(prefs, p.liked_tags, bool(p.last_query))
                mentioned = prefs.mentioned()
                p = prof.apply_preferences(p, plan.liked_tags, plan.disliked_tags, mentioned, query=plan.query,
                                           item_genres=self.rec.genres_of([*mentioned, *p.liked_items]),
                                           constraints=plan.constraints, new_request=plan.new_request)
            else:  # the product reads titles the same way in both roles; context_seeds handles repeats
                named = named + self.extractor.titles_in(text)
        self._state = (case.conversation, len(case.context), p, named)
        return p, named

    def query(self, case: Case):
        """What the recommender is asked for this case: the recent context as text, the profile's tags,
        liked items and hard wishes, its own earlier picks as context, and (fresh-only) the movies mentioned
        earlier left out."""
        from chatrec.core.constraints import Constraints
        from chatrec.recommend.query import Query, context_seeds

        p, named = self.profile(case)
        text = " ".join(t for _, t in case.context[-CONTEXT_MESSAGES:])
        exclude = frozenset(case.earlier) if self.fresh_only else frozenset()
        return Query(text=text, liked_tags=p.liked_tags, disliked_tags=p.disliked_tags,
                     liked_items=dict(p.liked_items), exclude_ids=exclude,
                     context_items=context_seeds(named, p, self.context_seed),
                     constraints=p.constraints if self.constraints else Constraints())

    def rank(self, case: Case, k: int = 50) -> list[str]:
        return [r.item.id for r in self.rec.recommend(self.query(case), k=k).items]


class EmbeddingRanker:
    """Baseline: cosine of the recent context's embedding alone (the vector index's top-k)."""

    def __init__(self, recommender, fresh_only: bool):
        self.rec = recommender
        self.fresh_only = fresh_only

    def rank(self, case: Case, k: int = 50) -> list[str]:
        text = " ".join(t for _, t in case.context[-CONTEXT_MESSAGES:])
        hits = [i for i, _ in self.rec.nearest(text, k + len(case.earlier))]
        if self.fresh_only:
            hits = [i for i in hits if i not in case.earlier]
        return hits[:k]


class PopularityRanker:
    """Baseline: mention counts in training conversations (or the movies file's counts)."""

    def __init__(self, counts: Counter, fresh_only: bool):
        self.order = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.fresh_only = fresh_only

    def rank(self, case: Case, k: int = 50) -> list[str]:
        out = []
        for i in self.order:
            if self.fresh_only and i in case.earlier:
                continue
            out.append(i)
            if len(out) == k:
                break
        return out


def mention_counts(conversations: Iterable[dict]) -> Counter:
    counts: Counter = Counter()
    for conv in conversations:
        for msg in conv["messages"]:
            counts.update(i for i in MENTION.findall(msg.get("text", "")) if i in conv["movieMentions"])
    return counts


def run(rankers: dict, all_cases: list[Case]) -> dict:
    results = {}
    for name, ranker in rankers.items():
        t0 = time.perf_counter()
        ranks = []
        for case in all_cases:
            ranked = ranker.rank(case)
            ranks.extend(rank_of(ranked, t, k=max(KS)) for t in case.targets)
        figures = metrics(ranks)
        figures["ms_per_case"] = round((time.perf_counter() - t0) * 1000 / max(len(all_cases), 1), 2)
        results[name] = figures
    return results


def sentiment_pairs(conv: dict, extractor) -> Iterator[tuple[int, float]]:
    """(gold liked 0/1, sentiment read from the seeker's own messages) per seeker-mentioned movie."""
    mentions = {k: v for k, v in conv["movieMentions"].items() if v}
    seeker = conv.get("initiatorWorkerId")
    read: dict[str, list[float]] = {}
    history: list[tuple[str, str]] = []
    for msg in conv["messages"]:
        text = render(msg.get("text", ""), mentions)
        ids = [i for i in MENTION.findall(msg.get("text", "")) if i in mentions]
        if msg.get("senderWorkerId") == seeker and ids:
            prefs = extractor.extract(text, history[-4:])
            by_id = {m.id: m.sentiment for m in prefs.items if m.id}
            for i in ids:
                read.setdefault(i, []).append(by_id.get(i, prefs.sentiment))
        history.append(("user" if msg.get("senderWorkerId") == seeker else "assistant", text))
    for movie, answer in (conv.get("initiatorQuestions") or {}).items():
        if movie in read and isinstance(answer, dict) and answer.get("liked") in (0, 1):
            yield int(answer["liked"]), float(np.mean(read[movie]))


def macro_f1(gold: list[int], pred: list[int]) -> float:
    scores = []
    for label in (0, 1):
        tp = sum(1 for g, p in zip(gold, pred) if g == p == label)
        fp = sum(1 for g, p in zip(gold, pred) if p == label and g != label)
        fn = sum(1 for g, p in zip(gold, pred) if g == label and p != label)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(scores) / 2



def sentiment(extractor, conversations: list[dict]) -> dict | None:
    """Macro-F1 of the seeker's liked/disliked movies as read from their messages, vs ReDial's labels;
    None when no seeker-mentioned movie has such a label."""
    pairs = [p for conv in conversations for p in sentiment_pairs(conv, extractor)]
    if not pairs:
        return None
    gold = [g for g, _ in pairs]
    pred = [0 if s < 0 else 1 for _, s in pairs]  # neutral reads lean liked, as most mentions are
    majority = max((0, 1), key=gold.count)
    return {
        "n": len(pairs),
        "macro_f1": round(macro_f1(gold, pred), 4),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(pairs), 4),
        "majority_baseline": {"label": majority, "macro_f1": round(macro_f1(gold, [majority] * len(gold)), 4),
                              "accuracy": round(gold.count(majority) / len(gold), 4)},
        "share_liked": round(gold.count(1) / len(gold), 4),
    }


def rating_likes(settings) -> list[tuple[str, str]]:
    """The MovieLens likes of the configured interaction log ([] when it is switched off)."""
    from chatrec.recommend.behaviour import read_interactions

    return [] if settings.interactions is None else read_interactions(settings.interactions, settings.liked_rating)


def use_behaviour(setup: RedialSetup, settings, evaluated: list[dict], train: list[dict] | None) -> dict:
    """Everyone's behaviour for the ReDial catalogue, built so that no evaluated conversation informs its
    own ranking: the movie file's mention counts less the evaluated conversations' own mentions, MovieLens
    likes of the joined movies, and co-mentions from training conversations (``train``, else the bundled log
    of the ReDial training conversations), with the evaluated conversations' rows dropped."""
    from chatrec.recommend.behaviour import Behaviour, read_interactions

    rec = setup.recommender
    evaluated_ids = {str(c.get("conversationId")) for c in evaluated}
    if train is not None:
        pairs, source = co_mention_pairs(train), "--train"
    else:
        pairs, source = read_interactions(BUNDLED_CO_MENTIONS), "data/redial/" + BUNDLED_CO_MENTIONS.name
    pairs = [(c, m) for c, m in pairs if c not in evaluated_ids]
    cat = rec.catalogue
    prior = mention_prior(setup.movies, cat.ids, mention_counts(evaluated))
    logs = [(log, 1.0) for log in behaviour_logs(setup.items, cat.index_of, rating_likes(settings), pairs)
            if log.n_likes]
    rec.behaviour.use(Behaviour(tuple(logs)) if logs else None, prior)
    return {"co_mentions_from": source, "training_conversations": len({c for c, _ in pairs}),
            **(Behaviour(tuple(logs)).describe() if logs else {})}


def evaluate(setup: RedialSetup, settings, conversations: list[dict], train: list[dict] | None,
             fresh_only: bool, baselines: bool) -> dict:
    """`chatrec eval redial`: the product path (and, with ``baselines``, popularity and embedding-only)."""
    t0 = time.perf_counter()
    behaviour = use_behaviour(setup, settings, conversations, train)
    rec = setup.recommender
    all_cases = [c for conv in conversations for c in cases(conv, fresh_only)]
    rankers = {"system": ProductRanker(rec, setup.extractor, fresh_only, settings.context_seed)}
    if baselines:
        counts = mention_counts(train) if train is not None else Counter({m[0]: m[3] for m in setup.movies})
        rankers["popularity"] = PopularityRanker(counts, fresh_only)
        rankers["embedding"] = EmbeddingRanker(rec, fresh_only)
    results = run(rankers, all_cases)
    w = rec.weights
    payload = {**results["system"], "conversations": len(conversations), "cases": len(all_cases),
               "fresh_only": fresh_only, "llm": settings.llm, "catalogue_match": setup.match, "behaviour": behaviour,
               "weights": {k: getattr(w, k) for k in ("similarity", "behaviour", "content", "collaborative",
                                                       "mmr_lambda")}}
    if baselines:
        payload["baselines"] = {k: v for k, v in results.items() if k != "system"}
        payload["published_fresh_only"] = {m: dict(zip(("recall@1", "recall@10", "recall@50"), v))
                                           for m, v in PUBLISHED_FRESH.items()}
    payload["seconds"] = round(time.perf_counter() - t0, 1)
    return payload
