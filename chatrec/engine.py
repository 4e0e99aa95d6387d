"""The chat engine: one turn is clean → read → plan → update the profile → retrieve → rank → explain.

The REPL, the web UI, the HTTP API and ``chatrec recommend`` only render what this returns (a one-shot
``recommend`` is a turn of a throwaway session). Feedback on a pick (like, dislike, watched, ...) updates
the profile and re-ranks the current candidate pool at once, with no LLM call and no index query. State
lives behind the :class:`chatrec.ports.StateStore` port, so a user id restores the profile across restarts.

Every public method takes the session's lock (re-entrant), so front ends never lock: a feedback click
while a turn's explanation streams re-ranks at once, and the turn is stored when its stream ends.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from chatrec.core import dialogue
from chatrec.core import profile as prof
from chatrec.core.constraints import Constraints, Genres
from chatrec.core.items import tag_key
from chatrec.core.preferences import Preferences
from chatrec.core.profile import Profile
from chatrec.reading.lexicon import genre_mentions
from chatrec.llm.explain import ExplainContext, Explanation, Line, Outcome, liked_facts, reason
from chatrec.ports import StateStore
from chatrec.recommend.query import CONTEXT_ITEMS, Query, context_seeds
from chatrec.recommend.ranking import Pool
from chatrec.recommend.recommender import Candidates, Recommender
from chatrec.recommend.results import Recommendation, Result

log = logging.getLogger(__name__)

CLARIFY = (
    "What are you in the mood for? Tell me a genre, a film you loved, someone you like, or something to avoid "
    "(for example: \"something funny, no romance\", \"more like Alien\" or \"a Tom Hanks film from the 90s\"). "
    "Meanwhile, some popular picks:"
)
EVENT_VERBS = {"like": "Liked", "dislike": "Disliked", "watched": "Marked as watched", "purchase": "Bought",
               "view": "Viewed", "click": "Opened", "skip": "Skipped"}

#: Longest message read. The embedder reads ~256 word pieces and the model a 2k-token window, so a
#: longer message adds nothing but time: a 1 MB paste took minutes of tokenising before this cap.
MAX_MESSAGE_CHARS = 2000
#: on a like, this many of the items most co-liked with the new likes join the pool (a re-rank stays ~ms)
LIKE_COLLAB_ROWS = 30
#: session locks kept before the idle ones are dropped
MAX_LOCKS = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, list[str]]:
    """A user message made safe to process, and notes for the user about what was changed.

    Control characters (terminal escapes, NUL, backspace) become spaces; lone surrogates (from
    invalid UTF-8 read with ``surrogateescape``, or a broken client) become U+FFFD, because the
    tokenizer, SQLite and llama.cpp all refuse them; text past ``limit`` characters is dropped.
    """
    notes: list[str] = []
    text = _SURROGATE.sub("\ufffd", text or "")
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > limit:
        notes.append(f"Your message was long ({len(text):,} characters); I read only the first {limit:,}.")
        text = text[:limit].rstrip()
    return text, notes


class EngineError(ValueError):
    """A request the engine cannot carry out (bad item number, unknown event); says why."""


@dataclass
class Reply:
    """What one turn or one event returns: a header, the picks, and the explanation's reviewed lines."""

    kind: str  # "picks" | "clarify" | "rerank" | "more"
    header: str
    recommendations: list[Recommendation]
    explanation: Explanation | None = None
    understood: str = ""  # what the engine read, for the user to check: "comedy · with Tom Hanks · 1990–1999"
    preferences: dict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rerank_seconds: float | None = None  # feedback: the re-rank alone (profile update + rank)
    cold_start: bool = False
    constraint_note: str | None = None  # too few items meet the hard wishes: the list ends with the closest
    _finish: object = None  # called once when the explanation has been consumed (stores the turn)

    def lines(self) -> Iterator[Line]:
        """The explanation's lines, each shown only once it passed the review; the turn is stored at the end."""
        text: list[str] = []
        try:
            for line in self.explanation or ():
                text.append(line.text)
                yield line
        finally:
            finish, self._finish = self._finish, None
            if finish is not None:
                finish("\n".join(text))

    def text(self) -> str:
        return "\n".join(line.text for line in self.lines())

    @property
    def outcome(self) -> Outcome | None:
        return self.explanation.outcome if self.explanation is not None else None


@dataclass
class Session:
    user_id: str
    profile: Profile = field(default_factory=Profile)
    history: list[tuple[str, str]] = field(default_factory=list)
    shown: list[Recommendation] = field(default_factory=list)
    earlier: set[str] = field(default_factory=set)  # shown on earlier pages of this list (/more)
    pool: list[int] = field(default_factory=list)  # candidate rows of the current list
    arrays: Pool | None = None  # the pool's arrays, gathered once per retrieval
    masks: tuple[object, list] = (None, [])  # (constraints, their masks over the catalogue), reused by re-ranks
    request: str = ""
    result: Result | None = None
    # picks shown on earlier turns, oldest first: what the conversation has been about (they seed the
    # collaborative part, as a human recommender's own suggestions steer the next ones; ReDial, docs/RESULTS.md)
    context: list[str] = field(default_factory=list)
    k: int | None = None  # list length for this session (None: the engine's)


class ChatEngine:
    def __init__(self, recommender: Recommender, extractor, explainer, state: StateStore, k: int = 5,
                 context_seed: float = 0.5, log_messages: bool = False):
        self.recommender = recommender
        self.extractor = extractor
        self.explainer = explainer
        self.state = state
        self.k = k
        self.context_seed = context_seed
        self.log_messages = log_messages
        self._locks: dict[str, threading.RLock] = {}
        self._locks_lock = threading.Lock()

    @property
    def explains_with_model(self) -> bool:
        """Whether explanations come from a model (otherwise they are the picks' fact lines, which the
        front ends already show beside each pick)."""
        return getattr(self.explainer, "backend", None) is not None

    # -- sessions ---------------------------------------------------------------------------------
    def session(self, user_id: str) -> Session:
        """The stored profile and history of ``user_id`` (empty for a new user)."""
        session = Session(user_id, self.state.load_profile(user_id), self.state.history(user_id, limit=20))
        if not session.profile.is_empty:  # show where the user left off, without an LLM call
            session.request = session.profile.last_query
            self._rank(session, fresh=True)
        return session

    @contextmanager
    def locked(self, session: Session):
        """The session's lock (re-entrant): every public method takes it; front ends read under it."""
        with self._locks_lock:
            lock = self._locks.get(session.user_id)
            if lock is None:
                if len(self._locks) >= MAX_LOCKS:  # forget the locks nobody holds (one per user id ever seen)
                    for user, idle in list(self._locks.items()):
                        if idle.acquire(blocking=False):
                            idle.release()
                            del self._locks[user]
                lock = self._locks[session.user_id] = threading.RLock()
        with lock:
            yield

    # -- one message ------------------------------------------------------------------------------
    def turn(self, session: Session, text: str) -> Reply:
        with self.locked(session):
            t0 = time.perf_counter()
            text, notes = clean_message(text)
            prefs = self.extractor.extract(text, session.history[-6:]) if text else None
            reply = self._answer(session, text, prefs, notes, explain=True)
            reply.seconds = time.perf_counter() - t0
            return reply

    def recommend(self, text: str = "", like_tags: Sequence[str] = (), dislike_tags: Sequence[str] = (), k: int = 10,
                  filter_disliked: bool | None = None, explain: bool = False) -> Reply:
        """A one-shot recommendation: the turn pipeline on a throwaway session (nothing is stored).
        ``like_tags``/``dislike_tags`` are explicit tag choices; they win over what the text says."""
        t0 = time.perf_counter()
        rec = self.recommender
        liked, unknown_like = rec.resolve_tags(like_tags)
        disliked, unknown_dislike = rec.resolve_tags(dislike_tags)
        text, notes = clean_message(text)  # same limits as a chat message
        for tag, close in {**unknown_like, **unknown_dislike}.items():
            notes.append(f"unknown tag {tag!r}" + (f"; closest known: {', '.join(close)}" if close else ""))
        prefs = self.extractor.extract(text) if text.strip() else None
        if liked or disliked or unknown_like:
            prefs = _with_tags(prefs, liked, disliked, list(unknown_like))
        session = Session("__one-shot__", k=k)
        reply = self._answer(session, text, prefs, notes, explain=explain, store=False, filter_disliked=filter_disliked)
        reply.seconds = time.perf_counter() - t0
        return reply

    def _answer(self, session: Session, text: str, prefs: Preferences | None, notes: list[str], explain: bool,
                store: bool = True, filter_disliked: bool | None = None) -> Reply:
        notes += [n for n in (prefs.notes if prefs else []) if n.startswith("LLM unavailable")]
        plan = dialogue.plan_turn(prefs, session.profile.liked_tags, bool(session.profile.last_query))
        if plan.kind == "refine" and plan.constraints and prefs is not None:
            # a refinement nothing can meet ("hidden gems from the 2000s" after "a Nolan film") changes the subject
            rec = self.recommender
            if rec.meeting(session.profile.constraints.refined(plan.constraints)) == 0 < rec.meeting(plan.constraints):
                plan = replace(plan, kind="request", query=prefs.query)
        if prefs is not None:  # even an unclear message is a turn: earlier wishes fade
            mentioned = prefs.mentioned()
            session.profile = prof.apply_preferences(
                session.profile, plan.liked_tags, plan.disliked_tags, mentioned, query=plan.query,
                item_genres=self.recommender.genres_of([*mentioned, *session.profile.liked_items]),
                constraints=plan.constraints, new_request=plan.new_request,
            )
        if plan.kind == "unclear" and session.profile.is_empty:
            result = self.recommender.recommend(Query(exclude_ids=session.profile.excluded), k=self._k(session))
            session.shown, session.result = result.items, result
            session.pool, session.arrays, session.earlier, session.request = [], None, set(), ""
            reply = Reply("clarify", CLARIFY, list(session.shown), notes=notes, cold_start=True)
            if store:
                self._save_turn(session, text, CLARIFY)
            return reply
        if session.request:  # the last list answered a request (not a clarifying question's cold picks)
            session.context = [*session.context, *(r.item.id for r in session.shown)][-2 * CONTEXT_ITEMS:]
        session.request = session.profile.last_query
        # a pick the user liked stays in the list it came from, but a new request brings new picks:
        # its own like events would otherwise keep it at #1 of every later list
        session.earlier = set(session.profile.liked_items)
        self._rank(session, fresh=True, filter_disliked=filter_disliked)
        understood = self.understood(session.profile)
        header = f"{len(session.shown)} picks" + (f" ({understood})" if understood else "") + ":"
        note = session.result.note() if session.result else None
        if note:
            notes.append(note)
        reply = Reply("picks", header, list(session.shown), understood=understood,
                      preferences=prefs.model_dump() if prefs else None, notes=notes,
                      cold_start=bool(session.result and session.result.cold_start), constraint_note=note)
        if explain and reply.recommendations:
            reply.explanation = self.explainer.explain(reply.recommendations, self._explain_context(session, text))
        if store:
            reply._finish = lambda answer: self._store_turn(session, text, header, answer)
        return reply

    def _explain_context(self, session: Session, text: str) -> ExplainContext:
        p, cat = session.profile, self.recommender.catalogue
        liked = cat.items(cat.rows_of(p.liked_items))
        w = self.recommender.weights
        return ExplainContext(request=text or session.request, liked_titles=tuple(it.display_title for it in liked),
                              disliked=tuple(sorted(p.disliked_tags, key=lambda t: -p.disliked_tags[t])[:5]),
                              constraints=p.constraints.describe(), weights=(w.similarity, w.behaviour, w.content),
                              liked_facts=liked_facts(liked))

    def _store_turn(self, session: Session, text: str, header: str, answer: str) -> None:
        with self.locked(session):
            self._save_turn(session, text, f"{header}\n{answer}".strip())

    def _save_turn(self, session: Session, text: str, answer: str) -> None:
        messages = [("user", text), ("assistant", answer)] if text else [("assistant", answer)]
        session.history.extend(messages)
        if self.log_messages:
            log.info("turn of %s: %r -> %r", session.user_id, text, answer[:200])
        self.state.record_turn(session.user_id, session.profile, messages)

    # -- feedback: no LLM, no index query -------------------------------------------------------
    def feedback(self, session: Session, which: int | str, event: str) -> Reply:
        with self.locked(session):
            t0 = time.perf_counter()
            rec = self._pick(session, which)
            if event not in prof.EVENTS:
                raise EngineError(f"unknown event {event!r}; use one of {', '.join(prof.EVENTS)}")
            item = rec.item
            # An item lends its genres to the profile, not its hundreds of user tags.
            lent = [tag_key(g) for g in item.genres] or list(item.tag_keys)[:3]
            t1 = time.perf_counter()
            session.profile = prof.apply_event(session.profile, item.id, event, lent)
            if event in ("like", "watched", "purchase"):
                known = set(session.pool)
                extra = [r for r in self.recommender.neighbours([item.id]) if r not in known]
                session.pool = session.pool + self._allowed(session, extra)
            self._rank(session, fresh=False)
            rerank = time.perf_counter() - t1
            self.state.record_event(session.user_id, item.id, event, session.profile)
            header = f"{EVENT_VERBS[event]} {item.display_title}. Updated picks:"
            return Reply("rerank", header, list(session.shown), understood=self.understood(session.profile),
                         seconds=time.perf_counter() - t0, rerank_seconds=rerank)

    def more(self, session: Session) -> Reply:
        with self.locked(session):
            session.earlier |= {r.item.id for r in session.shown}
            self._rank(session, fresh=not session.pool)
            if not session.shown:
                return Reply("more", "No more picks for this request; tell me something new.", [])
            return Reply("more", "More picks:", list(session.shown), understood=self.understood(session.profile))

    def why(self, session: Session, which: int | str) -> str:
        with self.locked(session):
            r = self._pick(session, which)
        b, w = r.breakdown, self.recommender.weights
        lines = [
            f"{r.item.display_title} — score {b.score:.3f}",
            f"  = {w.similarity:g}·S {b.similarity:.3f}  (similarity to what you asked for)",
            f"  + {w.behaviour:g}·B {b.behaviour:.3f}  (behaviour: your events on it and everyone's ratings)",
            f"  + {w.content:g}·C {b.content:.3f}  (your liked tags it has: {', '.join(b.matched_tags) or 'none'})",
        ]
        if b.penalty:
            lines.append(f"  − penalty {b.penalty:.3f}  (disliked tags it has: {', '.join(b.disliked_tags)})")
        if r.fit.met:
            marks = ", ".join(f"{label} {'✓' if ok else '✗'}" for label, ok in r.fit.met)
            lines.append(f"  constraints: {marks}" + ("  (one of the closest: not all are met)" if r.fit.closest else ""))
        people = [f"by {', '.join(r.item.directors)}"] if r.item.directors else []
        people += [f"with {', '.join(r.item.cast[:3])}"] if r.item.cast else []
        if people or r.item.runtime:
            lines.append("  " + "; ".join(people + ([f"{r.item.runtime} min"] if r.item.runtime else [])))
        lines.append(f"  tags: {', '.join(r.item.all_tags[:8])}")
        lines.append(f"  why: {reason(r)}")
        return "\n".join(lines)

    # -- profile ----------------------------------------------------------------------------------
    def reset(self, session: Session) -> None:
        """Start over: empty profile (stored), current list cleared. History is kept."""
        with self.locked(session):
            session.profile = Profile()
            self._clear_list(session)
            session.context = []
            self.state.save_profile(session.user_id, session.profile)

    def forget(self, session: Session) -> None:
        """Delete every stored trace of this user and start from nothing."""
        with self.locked(session):
            self.state.forget(session.user_id)
            session.profile = Profile()
            session.history.clear()
            self._clear_list(session)
            session.context = []

    def remove(self, session: Session, what: str) -> Reply:
        """Take back a constraint ("with Tom Hanks", "1990–1999") or a liked/disliked tag, and re-rank."""
        with self.locked(session):
            profile, removed = prof.remove(session.profile, what)
            if removed is None:
                raise EngineError(f"nothing called {what!r} in your profile; /profile lists what there is")
            session.profile = profile
            self.state.save_profile(session.user_id, session.profile)
            session.earlier = set()
            self._rank(session, fresh=True)
            understood = self.understood(session.profile)
            header = f"Removed {removed!r} from your profile. Updated picks" + (f" ({understood})" if understood else "")
            return Reply("rerank", header + ":", list(session.shown), understood=understood)

    def remove_tag(self, session: Session, tag: str) -> Reply:
        return self.remove(session, tag)

    def profile_view(self, session: Session) -> dict:
        with self.locked(session):
            p = session.profile
        cat = self.recommender.catalogue

        def titles(ids) -> list[str]:
            index = cat.index_of
            return [cat.item(index[i]).display_title if i in index else i for i in ids]

        return {
            "constraints": p.constraints.labels,
            "liked_tags": {t: round(w, 2) for t, w in sorted(p.liked_tags.items(), key=lambda kv: -kv[1])},
            "disliked_tags": {t: round(w, 2) for t, w in sorted(p.disliked_tags.items(), key=lambda kv: -kv[1])},
            "liked_items": titles(p.liked_items),
            "disliked_items": titles(sorted(p.disliked_items)),
            "watched_items": titles(sorted(p.seen_items - p.disliked_items)),
        }

    def snapshot(self, session: Session) -> tuple[list[Recommendation], dict]:
        """The current list and profile view, read together (a click may be changing them)."""
        with self.locked(session):
            return list(session.shown), self.profile_view(session)

    @staticmethod
    def understood(p: Profile) -> str:
        """What is in force, for the user to check and correct: "comedy · with Tom Hanks · 1990–1999"."""
        parts = list(p.constraints.labels)
        said = {word for label in parts for word in label.lower().split(" or ")}

        def shown(tag: str) -> bool:  # said already, or a cue word of a genre said ("funny" for comedy)
            return tag in said or f"not {tag}" in said or any(
                g.lower() in said for _, g, _, _ in genre_mentions(tag))

        likes = [t for t, w in sorted(p.liked_tags.items(), key=lambda kv: -kv[1])[:4] if w >= prof.Decay().focus
                 and not shown(t)]
        parts += likes
        avoid = [t for t, _ in sorted(p.disliked_tags.items(), key=lambda kv: -kv[1])[:3] if f"not {t}" not in said]
        if avoid:
            parts.append("avoiding " + ", ".join(avoid))
        return " · ".join(parts)

    # -- internals --------------------------------------------------------------------------------
    def _clear_list(self, session: Session) -> None:
        session.shown, session.pool, session.arrays, session.earlier, session.request = [], [], None, set(), ""
        session.result, session.masks = None, (None, [])

    def _query(self, session: Session) -> Query:
        p = session.profile
        return Query(
            text=session.request,
            liked_tags=p.liked_tags,
            disliked_tags=p.disliked_tags,
            liked_items=p.liked_items,
            user_events=p.events,
            exclude_ids=p.excluded | frozenset(session.earlier),
            context_items=context_seeds(session.context, p, self.context_seed),
            constraints=p.constraints,
        )

    def _masks(self, session: Session) -> list[np.ndarray]:
        constraints = session.profile.constraints
        if session.masks[0] != constraints:
            masks = constraints.masks(self.recommender.catalogue) if constraints else []
            session.masks = (constraints, masks)
        return session.masks[1]

    def _allowed(self, session: Session, rows: list[int]) -> list[int]:
        """Of ``rows``, those meeting every constraint in force."""
        masks = self._masks(session)
        return [r for r in rows if all(m[r] for m in masks)] if masks else rows

    def _rank(self, session: Session, fresh: bool, filter_disliked: bool | None = None) -> None:
        """Rank the session's pool; ``fresh`` first retrieves a new pool (query, profile, liked items)."""
        rec = self.recommender
        query = self._query(session)
        if fresh:
            cands = rec.candidates(query, self._k(session))
            session.masks = (query.constraints, cands.masks)
            session.pool, session.arrays = cands.rows, None
        else:  # a like changes who the user resembles: their favourites join the pool
            cands = Candidates(rec.user_vector(query), rec.collaborative(query), self._masks(session), session.pool)
            known = set(session.pool)
            extra = [r for r in rec.collab_rows(cands.collab, LIKE_COLLAB_ROWS) if r not in known]
            session.pool = session.pool + self._allowed(session, extra)
        if session.arrays is None:
            session.arrays = rec.pool(session.pool)
        elif len(session.arrays) != len(session.pool):
            session.arrays = rec.extend_pool(session.arrays, session.pool[len(session.arrays):])
        session.result = rec.rank(query, session.arrays, cands, self._k(session), filter_disliked)
        session.shown = session.result.items

    def _k(self, session: Session) -> int:
        return session.k or self.k

    def _pick(self, session: Session, which: int | str) -> Recommendation:
        """Pick ``which``: a 1-based number in the current list (an int), or an item id (a str: ids may be
        digits, so a string is never read as a number)."""
        if isinstance(which, int):
            n = which
            if not 1 <= n <= len(session.shown):
                raise EngineError(
                    f"no pick number {n}: the list has {len(session.shown)}" if session.shown
                    else "there is no list yet: tell me what you like first"
                )
            return session.shown[n - 1]
        for r in session.shown:
            if r.item.id == which:
                return r
        raise EngineError(f"item {which!r} is not in the current list")


def _with_tags(prefs: Preferences | None, liked: dict, disliked: dict, unknown_like: list[str]) -> Preferences:
    """Explicit tag choices merged into what the text says (explicit choices win); the words of unknown
    liked tags still feed the semantic query."""
    prefs = prefs or Preferences()
    likes = [t for t in prefs.liked_tags if t not in disliked] + [t for t in liked if t not in prefs.liked_tags]
    dislikes = [t for t in prefs.disliked_tags if t not in liked] + [t for t in disliked if t not in prefs.disliked_tags]
    query = ". ".join(part for part in (prefs.query, ", ".join(unknown_like)) if part)
    # an explicit dislike also takes its genre out of the genres the text asked for (and the reverse)
    constraints = []
    for c in prefs.constraints:
        if isinstance(c, Genres):
            drop = liked if c.negated else disliked
            c = replace(c, genres=tuple(g for g in c.genres if g.lower() not in drop))
            if not c.genres:
                continue
        constraints.append(c)
    return prefs.model_copy(update={"liked_tags": likes, "disliked_tags": dislikes, "query": query,
                                    "constraints": Constraints(tuple(constraints))})
