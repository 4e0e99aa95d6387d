"""Preference extraction: what a message likes, dislikes and mentions, as a validated object.

Two extractors, one result type:

* :class:`RuleExtractor`, always available: the negation-aware cue lexicon of
  :mod:`chatrec.lexicon` for genres, exact phrase matches against the catalogue's tag vocabulary,
  title matching for mentioned items, and an embedding match of the message to genre
  descriptions for requests the lexicon has no word for.
* :class:`LLMExtractor`: the configured chat model, constrained to a JSON schema whose tag
  fields are an enum of the genres.

:class:`Extractor` combines them as configured (``CHATREC_EXTRACTOR``); ``auto`` is the
combination that measured best (README, "Extraction"). Any LLM failure falls back to the rules.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from chatrec import lexicon
from chatrec.llm.backends import ChatBackend, LLMError, Message, parse_json
from chatrec.llm.prompts import load_prompt, wrap_data
from chatrec.titles import TitleIndex

log = logging.getLogger(__name__)

GENRE_KEYS = {g.lower(): g for g in lexicon.GENRES}

#: Plain-language descriptions of each genre, for the embedding matcher.
GENRE_DESCRIPTIONS = {
    "Action": "action movie with fights, chases and explosions",
    "Adventure": "adventure movie with a journey, quest or exploration",
    "Animation": "animated cartoon movie",
    "Children": "movie for kids and families",
    "Comedy": "funny comedy that makes you laugh",
    "Crime": "crime movie about criminals, gangsters, heists or police",
    "Documentary": "documentary film about real events",
    "Drama": "emotional serious drama",
    "Fantasy": "fantasy movie with magic and mythical creatures",
    "Film-Noir": "black and white film noir detective story",
    "Horror": "scary horror movie",
    "Musical": "musical with singing and dancing",
    "Mystery": "mystery whodunit with clues to solve",
    "Romance": "romantic love story",
    "Sci-Fi": "science fiction movie set in space or the future",
    "Thriller": "suspenseful thriller",
    "War": "war movie about soldiers and battles",
    "Western": "western with cowboys in the wild west",
}

STOP_TAGS = set(
    """movie movies film films good great best bad story stories something anything watch watching night
    tonight friends friend people world life time love family kids fun really little classic new old
    favorite favourite want please recommendation recommendations thanks hello about like more less""".split()
)


class MentionedItem(BaseModel):
    title: str
    id: str | None = None
    sentiment: float = Field(0.0, ge=-1.0, le=1.0)
    unseen: bool = False  # named as not seen ("I haven't seen X"): says nothing about the user's taste


class Preferences(BaseModel):
    """One message's preferences. Tags are catalogue tag keys (genres lower-cased: "sci-fi")."""

    liked_tags: list[str] = Field(default_factory=list)
    disliked_tags: list[str] = Field(default_factory=list)
    items: list[MentionedItem] = Field(default_factory=list)
    sentiment: float = Field(0.0, ge=-1.0, le=1.0)
    query: str = ""
    source: str = "rules"
    notes: list[str] = Field(default_factory=list)

    @field_validator("liked_tags", "disliked_tags")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(t for t in v if t))

    @property
    def is_empty(self) -> bool:
        return not (self.liked_tags or self.disliked_tags or self.items)

    def mentioned(self) -> dict[str, float]:
        """Item id -> sentiment of the titles that tell something about the user's taste, for the profile.
        A title named as not seen is left out: neither liked, disliked nor watched, it may be recommended."""
        return {m.id: m.sentiment for m in self.items if m.id and not m.unseen}

    def genres(self, polarity: str) -> set[str]:
        """The MovieLens genres among the liked (``+``) or disliked (``-``) tags."""
        tags = self.liked_tags if polarity == "+" else self.disliked_tags
        return {GENRE_KEYS[t] for t in tags if t in GENRE_KEYS}


# -- the LLM's answer ----------------------------------------------------------------------------
class LLMAnswer(BaseModel):
    likes: list[str] = Field(default_factory=list)
    dislikes: list[str] = Field(default_factory=list)
    sentiment: float = 0.0

    @field_validator("likes", "dislikes", mode="before")
    @classmethod
    def _genres_only(cls, v):
        if not isinstance(v, list):
            return []
        known = {g.lower(): g for g in lexicon.GENRES}
        return list(dict.fromkeys(known[x.lower()] for x in v if isinstance(x, str) and x.lower() in known))

    @field_validator("sentiment", mode="before")
    @classmethod
    def _clip(cls, v):
        try:
            return max(-1.0, min(1.0, float(v)))
        except (TypeError, ValueError):
            return 0.0


def answer_schema(genres: Sequence[str] = lexicon.GENRES) -> dict:
    enum = {"type": "string", "enum": list(genres)}
    return {
        "type": "object",
        "properties": {
            "likes": {"type": "array", "items": enum, "maxItems": 3},
            "dislikes": {"type": "array", "items": enum, "maxItems": 3},
            "sentiment": {"type": "number"},
        },
        "required": ["likes", "dislikes", "sentiment"],
    }


# -- vocabulary ----------------------------------------------------------------------------------
@dataclass
class Vocabulary:
    """What extraction maps onto: the catalogue's tag keys (with item counts) and its titles."""

    tag_counts: dict[str, int]
    titles: TitleIndex | None = None
    min_count: int = 5

    def __post_init__(self) -> None:
        # Multi-word tags and distinctive single words only: "time travel", "heist", "zombie".
        self.phrases: dict[str, str] = {}
        for tag, n in self.tag_counts.items():
            if n < self.min_count or tag in GENRE_KEYS or tag in STOP_TAGS:
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9 '\-]*[a-z0-9]", tag):
                continue
            if " " not in tag and len(tag) < 5:
                continue
            self.phrases[tag] = tag
            if not tag.endswith("s") and " " not in tag:
                self.phrases.setdefault(tag + "s", tag)  # "zombies" → "zombie"
        self.max_words = max((p.count(" ") + 1 for p in self.phrases), default=1)

    def tag_mentions(self, clause: str) -> list[tuple[int, str, str, bool]]:
        out = []
        words = [(m.start(), m.group(0)) for m in re.finditer(r"[a-z0-9][a-z0-9'\-]*", clause)]
        for i in range(len(words)):
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                phrase = " ".join(w for _, w in words[i : i + n])
                tag = self.phrases.get(phrase)
                if tag:
                    out.append((words[i][0], tag, phrase, False))
                    break
        return out


POSITIVE = re.compile(
    r"\b(lov(?:e|ed|es|ing)|lik(?:e|ed|es)|enjoy(?:ed|s)?|great|amazing|awesome|fantastic|brilliant|favou?rite|"
    r"best|good|fun|excellent|perfect|masterpiece|incredible|wonderful|adore[ds]?|fan of|classic|hilarious)\b"
)
NEGATIVE = re.compile(
    r"\b(hat(?:e|ed|es)|dislik(?:e|ed|es)|boring|bored|awful|terrible|worst|meh|overrated|lame|bad|"
    r"annoying|stupid|dumb|dis+ap+oint(?:ed|ing)?|waste|sucked|sucks|horrible|cringe|dull|silly|corny)\b"
)


class RuleExtractor:
    def __init__(self, vocabulary: Vocabulary | None = None,
                 embed: Callable[[list[str]], np.ndarray] | None = None, embed_threshold: float = 0.55):
        self.vocabulary = vocabulary
        self.embed = embed
        self.embed_threshold = embed_threshold
        self._genre_vectors: np.ndarray | None = None

    def extract(self, message: str, history: Sequence[Message] = ()) -> Preferences:
        text = message or ""
        mentions = self.vocabulary.titles.find(text) if self.vocabulary and self.vocabulary.titles else []
        # Titles become placeholders so their words ("Alien", "War") are not read as genre cues.
        masked, slots = _mask_titles(text, mentions)
        finders = [lexicon.genre_mentions, _placeholder_finder]
        if self.vocabulary:
            finders.append(self.vocabulary.tag_mentions)
        reading = lexicon.scan(masked, finders)
        likes = [_tag_of(k) for k in reading.likes if not k.startswith("§")]
        dislikes = [_tag_of(k) for k in reading.dislikes if not k.startswith("§")]
        items = self._items(reading, slots, masked)
        notes: list[str] = []
        if not likes and not dislikes and self.embed is not None:
            guessed = self._embedding_genres(reading.positive_text)
            if guessed:
                likes = [g.lower() for g in guessed]
                notes.append(f"genre by embedding match: {', '.join(guessed)}")
        query = _restore(reading.positive_text, slots)
        sentiment = _sentiment(masked, len(reading.likes), len(reading.dislikes))
        return Preferences(
            liked_tags=likes, disliked_tags=dislikes, items=items, sentiment=sentiment, query=query,
            source="rules", notes=notes,
        )

    def _items(self, reading: lexicon.Reading, slots: dict[str, tuple[str, str]], masked: str) -> list[MentionedItem]:
        out: dict[str, MentionedItem] = {}
        polarity = {k: "like" for k in reading.likes} | {k: "dislike" for k in reading.dislikes}
        low = lexicon.normalise(masked)  # once per message, not once per title
        for key, (item_id, title) in slots.items():
            unseen = key in reading.unseen
            if unseen:
                s = 0.0  # "I haven't seen X": neither a like nor a dislike
            elif (compared := _comparison(low, key)) is not None:
                s = compared
            elif polarity.get(key) == "dislike":
                s = -1.0
            else:
                s = _local_sentiment(low, key)
            out[item_id] = MentionedItem(title=title, id=item_id, sentiment=s, unseen=unseen)
        return list(out.values())

    def _embedding_genres(self, text: str) -> list[str]:
        """Genres whose description is close to the request; only for messages the lexicon misses."""
        words = re.findall(r"[a-z]+", text.lower())
        if len(words) < 2:
            return []
        if self._genre_vectors is None:
            self._genre_vectors = self.embed(list(GENRE_DESCRIPTIONS.values()))
        q = self.embed([text])[0]
        sims = self._genre_vectors @ q
        best = int(np.argmax(sims))
        if sims[best] < self.embed_threshold:
            return []
        return [list(GENRE_DESCRIPTIONS)[best]]


def _tag_of(key: str) -> str:
    return key.lower() if key in lexicon.GENRES else key


_REFERENCE = re.compile(
    r"(?:like|liked|love|loved|loving|enjoyed|watched|saw|seen|than|as|about|similar to|adore|hated|disliked)"
    r"\s+$|[\"“'‘]\s*$", re.IGNORECASE,
)


def _mask_titles(text: str, mentions) -> tuple[str, dict[str, tuple[str, str]]]:
    """Replace each title with a placeholder key. Titles written as references ("loved Alien",
    "Whip It (2009)", quoted) lose their words, so "The Thing" or "Scary Movie" are not read as genre
    cues; a bare phrase that happens to be a title ("World War II") keeps its words as well."""
    slots: dict[str, tuple[str, str]] = {}
    out, cursor = [], 0
    for n, m in enumerate(mentions):
        key = f"§{n}§"
        slots[key] = (m.item_id, m.text)
        out.append(text[cursor : m.start])
        confident = bool(_REFERENCE.search(text[max(0, m.start - 20) : m.start])) or "(" in m.text
        out.append(f" {key} " if confident else f" {key} {m.text} ")
        cursor = m.end
    out.append(text[cursor:])
    return "".join(out), slots


def _placeholder_finder(clause: str) -> list[tuple[int, str, str, bool]]:
    return [(m.start(), m.group(0), m.group(0), False) for m in re.finditer(r"§\d+§", clause)]


def _restore(text: str, slots: dict[str, tuple[str, str]]) -> str:
    for key, (_, title) in slots.items():
        text = text.replace(key, title)
    return text.strip()


def _comparison(low: str, key: str) -> float | None:
    """A title (placeholder ``key`` in the normalised message ``low``) that is the yardstick of a
    comparison: "not as good as X" praises X, "better than X" ranks X below (unless nothing is: "it
    doesn't get better than X")."""
    low = re.sub(r"\s+", " ", low)
    k = re.escape(key)
    if re.search(rf"\bnot (?:as|so) \w+ as (?:i (?:liked|loved|enjoyed) |the (?:first|original) )?{k}", low):
        return 0.8
    m = re.search(rf"\b(?:better|funnier|scarier) than (?:the (?:new |original |first )?)?{k}", low)
    if m:
        lead = low[max(0, m.start() - 25): m.start()]
        return 0.8 if re.search(r"\b(?:nothing|no|none|never)\b|n't (?:get|be)\b", lead) else -0.5
    return None


def _local_sentiment(low: str, key: str) -> float:
    """Sentiment toward one mention (placeholder ``key`` in the normalised message ``low``): cue words
    in its sentence; a bare mention leans positive."""
    for sentence in re.split(r"[.!?\n]+", low):
        if key in sentence:
            pos, neg = len(POSITIVE.findall(sentence)), len(NEGATIVE.findall(sentence))
            if neg > pos:
                return -0.8
            if pos > neg:
                return 0.8
            return 0.3
    return 0.3


def _sentiment(text: str, n_likes: int, n_dislikes: int) -> float:
    low = lexicon.normalise(text)
    pos = len(POSITIVE.findall(low)) + n_likes
    neg = len(NEGATIVE.findall(low)) + n_dislikes
    if pos + neg == 0:
        return 0.0
    return round((pos - neg) / (pos + neg), 3)


# -- LLM -----------------------------------------------------------------------------------------
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
        raw = self.backend.complete(self.messages(message, history), json_schema=self.schema, max_tokens=80)
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

    def __init__(self, rules: RuleExtractor, llm: LLMExtractor | None = None, mode: str = "auto"):
        self.rules = rules
        self.llm = llm
        self.mode = AUTO_MODE if mode == "auto" else mode
        self.last_llm_seconds: float | None = None

    def extract(self, message: str, history: Sequence[Message] = ()) -> Preferences:
        prefs = self.rules.extract(message, history)
        if self.llm is None or self.mode == "rules":
            return prefs
        if self.mode == "fill" and (prefs.liked_tags or prefs.disliked_tags):
            return prefs
        t0 = time.perf_counter()
        try:
            answer = self.llm.extract(message, history)
        except LLMError as exc:
            log.warning("LLM extraction failed, using the rules alone: %s", exc)
            prefs.notes.append(f"LLM unavailable ({exc}); used the rules")
            return prefs
        finally:
            self.last_llm_seconds = time.perf_counter() - t0
        llm_likes = [g.lower() for g in answer.likes]
        llm_dislikes = [g.lower() for g in answer.dislikes if g.lower() not in llm_likes]
        if self.mode == "llm":
            non_genre_likes = [t for t in prefs.liked_tags if t not in GENRE_KEYS]
            non_genre_dislikes = [t for t in prefs.disliked_tags if t not in GENRE_KEYS]
            return prefs.model_copy(update={
                "liked_tags": llm_likes + non_genre_likes, "disliked_tags": llm_dislikes + non_genre_dislikes,
                "sentiment": answer.sentiment, "source": "llm",
            })
        # union / fill: the rules' polarity wins where both name a genre
        likes = list(prefs.liked_tags) + [g for g in llm_likes if g not in prefs.disliked_tags]
        dislikes = list(prefs.disliked_tags) + [g for g in llm_dislikes if g not in likes]
        return prefs.model_copy(update={
            "liked_tags": list(dict.fromkeys(likes)), "disliked_tags": list(dict.fromkeys(dislikes)),
            "source": f"rules+llm({self.mode})",
        })


def build_extractor(settings, catalogue=None, backend: ChatBackend | None = None, embedder=None) -> Extractor:
    vocab = vocabulary_from(catalogue) if catalogue is not None else None
    embed = embedder.encode if embedder is not None else None
    rules = RuleExtractor(vocab, embed)
    llm = LLMExtractor(backend) if backend is not None else None
    return Extractor(rules, llm, settings.extractor)


def vocabulary_from(catalogue) -> Vocabulary:
    """The tag vocabulary and title index of a loaded :class:`chatrec.recommender.Catalogue`."""
    counts = {tag: len(rows) for tag, rows in catalogue.by_tag.items()}
    titles = TitleIndex(
        (it.id, it.title, it.year, float(catalogue.engagement[i]), it.aka) for i, it in enumerate(catalogue.items)
    )
    return Vocabulary(counts, titles)


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
