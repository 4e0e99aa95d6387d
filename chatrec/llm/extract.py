"""Preference extraction with a chat model, and how it combines with the rule reader.

:class:`LLMExtractor` asks the configured model for a JSON object constrained by a schema: liked and
disliked genres (an enum of the 18), sentiment, and the hard wishes the rules read too (people with a role
and a polarity, a year span, a runtime bound, excluded genres), so a capable hosted or local model fills
the same structure (:class:`chatrec.core.preferences.Preferences`). Names it returns count only when the
catalogue lists them (``chatrec.reading.people.PeopleIndex``), so a model cannot invent a constraint
nobody can meet.

:class:`Extractor` combines the two as configured (``CHATREC_EXTRACTOR``); ``auto`` is the combination that
measured best (README, "Extraction"): the rules alone with the bundled 135M model. Any LLM failure falls
back to the rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field, ValidationError, field_validator

from chatrec.core.constraints import Constraint, Constraints, Genres, People, Runtime, Years
from chatrec.core.preferences import GENRE_KEYS, GENRES, Preferences
from chatrec.llm.backends import ChatBackend, LLMError, Message, parse_json
from chatrec.llm.prompts import load_prompt, wrap_data
from chatrec.reading.rules import RuleExtractor

log = logging.getLogger(__name__)


# -- the LLM's answer ----------------------------------------------------------------------------
class PersonAnswer(BaseModel):
    name: str
    role: str = "any"
    exclude: bool = False

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, v):
        return v if v in ("director", "cast", "any") else "any"


class LLMAnswer(BaseModel):
    likes: list[str] = Field(default_factory=list)
    dislikes: list[str] = Field(default_factory=list)
    sentiment: float = 0.0
    people: list[PersonAnswer] = Field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    runtime_max: int | None = None

    @field_validator("likes", "dislikes", mode="before")
    @classmethod
    def _genres_only(cls, v):
        if not isinstance(v, list):
            return []
        return list(dict.fromkeys(GENRE_KEYS[x.lower()] for x in v if isinstance(x, str) and x.lower() in GENRE_KEYS))

    @field_validator("sentiment", mode="before")
    @classmethod
    def _clip(cls, v):
        try:
            return max(-1.0, min(1.0, float(v)))
        except (TypeError, ValueError):
            return 0.0

    @field_validator("people", mode="before")
    @classmethod
    def _people(cls, v):
        return [p for p in v if isinstance(p, dict) and isinstance(p.get("name"), str)] if isinstance(v, list) else []

    @field_validator("year_min", "year_max", "runtime_max", mode="before")
    @classmethod
    def _number(cls, v):
        try:
            n = int(v)
        except (TypeError, ValueError):
            return None
        return n if 0 < n < 3000 else None

    def constraints(self, people_index=None) -> list[Constraint]:
        """The hard wishes in this answer; people only when the catalogue knows them (its spelling)."""
        out: list[Constraint] = []
        if self.likes:
            out.append(Genres(genres=tuple(self.likes)))
        if self.dislikes:
            out.append(Genres(genres=tuple(self.dislikes), negated=True))
        for p in self.people:
            known = people_index.person(p.name) if people_index is not None else None
            if known is not None:
                role = p.role if p.role != "any" else known.main_role()
                out.append(People(names=(known.name,), role=role, negated=p.exclude))
        if self.year_min or self.year_max:
            out.append(Years(lo=self.year_min, hi=self.year_max))
        if self.runtime_max:
            out.append(Runtime(hi=self.runtime_max))
        return out


def answer_schema(genres: Sequence[str] = GENRES) -> dict:
    enum = {"type": "string", "enum": list(genres)}
    person = {"type": "object", "properties": {"name": {"type": "string"},
                                               "role": {"type": "string", "enum": ["director", "cast", "any"]},
                                               "exclude": {"type": "boolean"}},
              "required": ["name", "role", "exclude"]}
    return {
        "type": "object",
        "properties": {
            "likes": {"type": "array", "items": enum, "maxItems": 3},
            "dislikes": {"type": "array", "items": enum, "maxItems": 3},
            "sentiment": {"type": "number"},
            "people": {"type": "array", "items": person, "maxItems": 3},
            "year_min": {"type": ["integer", "null"]},
            "year_max": {"type": ["integer", "null"]},
            "runtime_max": {"type": ["integer", "null"]},
        },
        "required": ["likes", "dislikes", "sentiment", "people", "year_min", "year_max", "runtime_max"],
    }


class LLMExtractor:
    def __init__(self, backend: ChatBackend, history_turns: int = 4):
        self.backend = backend
        self.history_turns = history_turns
        self.schema = answer_schema()

    def messages(self, message: str, history: Sequence[Message] = ()) -> list[Message]:
        system = load_prompt("system") + "\n\n" + load_prompt("extraction")
        recent = [(r, c) for r, c in history if r in ("user", "assistant")][-self.history_turns :]
        context = "\n".join(f"{r}: {c}" for r, c in recent)
        user = (wrap_data("earlier turns", context) + "\n" if context else "") + wrap_data("message", message)
        return [("system", system), ("user", user)]

    def extract(self, message: str, history: Sequence[Message] = ()) -> LLMAnswer:
        raw = self.backend.complete(self.messages(message, history), json_schema=self.schema, max_tokens=120)
        try:
            return LLMAnswer.model_validate(parse_json(raw))
        except ValidationError as exc:
            raise LLMError(f"the model's JSON does not fit the schema: {exc.error_count()} errors") from None


# -- combination ---------------------------------------------------------------------------------
#: What ``auto`` means, decided by measurement (README "Extraction"): the rules alone scored best on
#: every dev set we have; the 135M model's genres only added false positives, in union and as fill-in.
AUTO_MODE = "rules"


class Extractor:
    """Rules, optionally combined with an LLM; never raises for an LLM failure."""

    def __init__(self, rules: RuleExtractor, llm: LLMExtractor | None = None, mode: str = "auto", people=None):
        """``people``: the catalogue's people (``reading.people.PeopleIndex``): names an LLM returns count only
        when they are in it."""
        self.rules = rules
        self.llm = llm
        self.mode = AUTO_MODE if mode == "auto" else mode
        self.people = people

    def titles_in(self, text: str) -> list[str]:
        """Ids of the catalogue titles named in ``text`` (the rules read them)."""
        return self.rules.titles_in(text)

    def extract(self, message: str, history: Sequence[Message] = ()) -> Preferences:
        prefs = self.rules.extract(message, history)
        if self.llm is None or self.mode == "rules":
            return prefs
        if self.mode == "fill" and (prefs.liked_tags or prefs.disliked_tags or prefs.constraints):
            return prefs
        t0 = time.perf_counter()
        try:
            answer = self.llm.extract(message, history)
        except LLMError as exc:
            log.warning("LLM extraction failed, using the rules alone: %s", exc)
            prefs.notes.append(f"LLM unavailable ({exc}); used the rules")
            return prefs
        finally:
            log.debug("LLM extraction took %.3f s", time.perf_counter() - t0)
        llm_likes = [g.lower() for g in answer.likes]
        llm_dislikes = [g.lower() for g in answer.dislikes if g.lower() not in llm_likes]
        llm_constraints = answer.constraints(self.people)
        if self.mode == "llm":
            non_genre_likes = [t for t in prefs.liked_tags if t not in GENRE_KEYS]
            non_genre_dislikes = [t for t in prefs.disliked_tags if t not in GENRE_KEYS]
            return prefs.model_copy(update={
                "liked_tags": llm_likes + non_genre_likes, "disliked_tags": llm_dislikes + non_genre_dislikes,
                "sentiment": answer.sentiment, "source": "llm", "constraints": Constraints(tuple(llm_constraints)),
            })
        # union / fill: the rules' polarity wins where both name a genre; the rules' constraints win per kind
        likes = list(prefs.liked_tags) + [g for g in llm_likes if g not in prefs.disliked_tags]
        dislikes = list(prefs.disliked_tags) + [g for g in llm_dislikes if g not in likes]
        kinds = {(c.kind, c.negated) for c in prefs.constraints}
        extra = tuple(c for c in llm_constraints if (c.kind, c.negated) not in kinds)
        return prefs.model_copy(update={
            "liked_tags": list(dict.fromkeys(likes)), "disliked_tags": list(dict.fromkeys(dislikes)),
            "constraints": Constraints(tuple(prefs.constraints) + extra), "source": f"rules+llm({self.mode})",
        })


def micro_f1(cases: Iterable[tuple[set, set]]) -> dict:
    """Micro-averaged P/R/F1 over (gold, predicted) sets of (genre, polarity) pairs, plus exact match."""
    tp = fp = fn = exact = n = 0
    for gold, pred in cases:
        n += 1
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
        exact += gold == pred
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"n": n, "micro_f1": round(f1, 4), "precision": round(p, 4), "recall": round(r, 4),
            "exact_match": round(exact / n, 4) if n else 0.0}
