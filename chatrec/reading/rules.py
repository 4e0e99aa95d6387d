"""The rule reader: what a message likes, dislikes, names and requires, without a model. Pure.

:class:`RuleExtractor` finds the catalogue's titles, people and the message's other wishes (years,
runtime, quality, mood, soft dislikes), masks them with placeholders, and runs the negation-aware clause
scan of :mod:`chatrec.reading.lexicon` over genres, the catalogue's tag phrases and the placeholders, so
every mention gets its polarity from the same reading ("not with Tom Cruise", "nothing before 1980", "not
a comedy"). Genres the lexicon has no word for can be guessed by an embedding match to genre
descriptions (``embed``), for messages that name none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from chatrec.core.constraints import Constraint, Constraints, Genres, People
from chatrec.core.preferences import GENRE_KEYS, GENRES, MentionedItem, Preferences
from chatrec.reading import lexicon
from chatrec.reading.people import PeopleIndex
from chatrec.reading.titles import TitleIndex
from chatrec.reading.wishes import constraint_of, find_wishes, soft_finder

Message = tuple[str, str]  # (role, content)

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


@dataclass
class Vocabulary:
    """What extraction maps onto: the catalogue's tag keys (with item counts), titles and people."""

    tag_counts: dict[str, int]
    titles: TitleIndex | None = None
    people: PeopleIndex | None = None
    latest_year: int | None = None  # the catalogue's newest year: "recent" counts back from it
    #: the genres the catalogue's items carry: a genre wish is a hard constraint only where it can be met
    #: (None: any genre; a bookshop with no genres gets genre words as soft wishes only)
    genres: frozenset[str] | None = None
    min_count: int = 5

    def __post_init__(self) -> None:
        self.soft = soft_finder(set(self.tag_counts))
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
        vocab = self.vocabulary
        titles = vocab.titles.find(text) if vocab and vocab.titles else []
        people = vocab.people.find(text) if vocab and vocab.people else []
        wishes = find_wishes(text, vocab.latest_year if vocab else None)
        masked, slots, people_slots, wish_slots = _mask(text, _spans(text, titles, people, wishes))
        finders = [lexicon.genre_mentions, _placeholder_finder]
        if vocab:
            finders += [vocab.tag_mentions, vocab.soft]
        reading = lexicon.scan(masked, finders)
        likes = [_tag_of(k) for k in reading.likes if not k.startswith(("§", "soft:"))]
        dislikes = [_tag_of(k) for k in reading.dislikes if not k.startswith(("§", "soft:"))]
        items = self._items(reading, slots, masked)
        constraints, mood = _wishes(reading, people_slots, wish_slots)
        soft_likes, soft_dislikes = _soft(reading, vocab.soft.tags if vocab else {})
        likes = list(dict.fromkeys([*likes, *soft_likes]))
        dislikes = list(dict.fromkeys([*(t for t in dislikes if t not in soft_likes), *soft_dislikes]))
        constraints = _genre_constraints(reading, likes, dislikes, vocab.genres if vocab else None) + constraints
        notes: list[str] = []
        if not likes and not dislikes and not constraints and self.embed is not None:
            guessed = self._embedding_genres(reading.positive_text)
            if guessed:  # a guess: a soft like, never a hard constraint
                likes = [g.lower() for g in guessed]
                notes.append(f"genre by embedding match: {', '.join(guessed)}")
        query = _restore(reading.positive_text, slots)
        sentiment = _sentiment(masked, len(reading.likes), len(reading.dislikes))
        return Preferences(
            liked_tags=likes, disliked_tags=dislikes, items=items, sentiment=sentiment, query=query,
            constraints=Constraints(tuple(constraints)), mood=mood, source="rules", notes=notes,
        )

    def titles_in(self, text: str) -> list[str]:
        """Ids of the catalogue titles named in ``text`` (in text order)."""
        titles = self.vocabulary.titles if self.vocabulary else None
        return [m.item_id for m in titles.find(text)] if titles else []

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


def _confident(text: str, m) -> bool:
    """A title written as a reference ("loved Alien", "Whip It (2009)", quoted)."""
    return bool(_REFERENCE.search(text[max(0, m.start - 20) : m.start])) or "(" in m.text


def _spans(text: str, titles, people, wishes) -> list[tuple[int, int, str, object]]:
    """Titles, people and wishes in ``text`` without overlaps: the longest span wins; on equal length a
    title written as a reference, then a person, then a wish, then a bare title."""
    rank = {"title!": 3, "person": 2, "wish": 1, "title": 0}
    found = [(m.start, m.end, "title!" if _confident(text, m) else "title", m) for m in titles]
    found += [(m.start, m.end, "person", m) for m in people]
    found += [(w.start, w.end, "wish", w) for w in wishes]
    found.sort(key=lambda f: (-(f[1] - f[0]), -rank[f[2]], f[0]))
    kept: list[tuple[int, int, str, object]] = []
    for f in found:
        if not any(f[0] < k[1] and k[0] < f[1] for k in kept):
            kept.append(f)
    return sorted(kept)


def _mask(text: str, spans) -> tuple[str, dict, dict, dict]:
    """Replace each span with a placeholder key: titles "§N§", people "§pN§", wishes "§wN§". Titles written
    as references lose their words, so "The Thing" or "Scary Movie" are not read as genre cues; a bare
    phrase that happens to be a title ("World War II") keeps its words as well. People and wishes lose
    theirs ("Tom Hanks", "the 80s" are not cues)."""
    titles: dict[str, tuple[str, str]] = {}
    people: dict[str, object] = {}
    wishes: dict[str, object] = {}
    out, cursor = [], 0
    for start, end, kind, m in spans:
        out.append(text[cursor:start])
        if kind.startswith("title"):
            key = f"§{len(titles)}§"
            titles[key] = (m.item_id, m.text)
            out.append(f" {key} " if kind == "title!" else f" {key} {m.text} ")
        elif kind == "person":
            key = f"§p{len(people)}§"
            people[key] = m
            out.append(f" {key} ")
        else:
            key = f"§w{len(wishes)}§"
            wishes[key] = m
            out.append(f" {key} ")
        cursor = end
    out.append(text[cursor:])
    return "".join(out), titles, people, wishes


def _placeholder_finder(clause: str) -> list[tuple[int, str, str, bool]]:
    return [(m.start(), m.group(0), m.group(0), False) for m in re.finditer(r"§[pw]?\d+§", clause)]


def _restore(text: str, slots: dict[str, tuple[str, str]]) -> str:
    """The positive text with titles put back (they steer S: "more like Alien") and people and wishes
    left out (they are hard wishes, not meanings: "a comedy from the 80s" asks S for "a comedy")."""
    for key, (_, title) in slots.items():
        text = text.replace(key, title)
    text = re.sub(r"§[pw]\d+§", " ", text)
    return " ".join(text.split())


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


def _wishes(reading: lexicon.Reading, people: dict, wishes: dict) -> tuple[list[Constraint], str | None]:
    """The hard constraints and mood of the people and wish placeholders, each read with the polarity the
    clause scan gave it."""
    disliked = set(reading.dislikes)
    constraints: list[Constraint] = []
    for key, m in people.items():
        constraints.append(People(names=m.names, role=m.role, negated=key in disliked))
    mood = None
    for key, w in wishes.items():
        if w.kind == "mood":
            mood = w.value
        elif (c := constraint_of(w, key in disliked)) is not None:
            constraints.append(c)
    return constraints, mood


def _soft(reading: lexicon.Reading, groups: dict[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """The catalogue tags of soft-dislike words: liked or disliked as read; "too X" always disliked."""
    likes: list[str] = []
    dislikes: list[str] = []
    for key in reading.likes:
        if key.startswith("soft:"):
            (dislikes if key.endswith("!") else likes).extend(groups.get(key.rstrip("!"), ()))
    for key in reading.dislikes:
        if key.startswith("soft:"):
            dislikes.extend(groups.get(key.rstrip("!"), ()))
    return likes, [t for t in dislikes if t not in likes]


def _genre_constraints(reading: lexicon.Reading, likes: list[str], dislikes: list[str],
                       known: frozenset[str] | None) -> list[Constraint]:
    """The genres a message asks for (any of them, a hard wish), and those it turns down by name (none of
    them: "no war films", "not a comedy"; a dislike read from a cue word such as "gory" stays soft). Only
    genres the catalogue carries (``known``) become constraints; the rest stay soft likes and dislikes."""
    out: list[Constraint] = []
    wanted = tuple(GENRE_KEYS[t] for t in likes if t in GENRE_KEYS and (known is None or GENRE_KEYS[t] in known))
    if wanted:
        out.append(Genres(genres=wanted))
    named = {key for key, polarity, phrase in reading.evidence
             if polarity == "dislike" and key in GENRES and lexicon.named_genre(key, phrase)}
    refused = tuple(g for g in GENRES if g in named and g.lower() in dislikes and (known is None or g in known))
    if refused:
        out.append(Genres(genres=refused, negated=True))
    return out
