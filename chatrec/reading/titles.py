"""Finding catalogue titles in free text ("more like Alien", "Whip It (2009)"). Pure.

Matching is on normalised titles (lower case, no accents or punctuation, leading article
dropped). Multi-word titles match anywhere; one-word titles only when written capitalised and
not a common word, so "It", "Up" or "Heat" in ordinary prose are not read as films, unless the
film's own year follows ("It (2017)"). A year right after the title picks among remakes; otherwise
the most engaged-with item wins.
Not handled: misspelt titles (beyond punctuation and articles) and titles longer than 10 words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

ARTICLES = ("the", "a", "an")
MAX_WORDS = 10
COMMON = set(
    """a about after again all also always am an and any anything are as at away back bad be because been
    before being best better big both but by can come could day did do does doing done down each even ever
    every few find first for from fun funny get give go going good got great had has have he her here him
    his how i if in into is it its just know last let life like little long look love made make man many
    me more most movie movies much must my need never new next night no not now of off old on once one only
    or other our out over people please really right said same see she should show so some something
    still such sure take tell than thank thanks that the their them then there these they thing think this
    those through time to today tonight too two up us very want was watch way we well were what when where
    which while who why will with without would year yes yet you your friends family kids home her hi
    hello hey ok okay sure cool nice maybe also""".split()
)


def normalise_title(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("&", " and ")
    text = re.sub(r"[^\w\s]", " ", text)
    words = text.split()
    if words and words[0] in ARTICLES and len(words) > 1:
        words = words[1:]
    return " ".join(words)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    item_id: str
    text: str


class _Entry(NamedTuple):
    item_id: str
    year: int | None
    weight: float


class TitleIndex:
    def __init__(self, entries: Iterable[tuple[str, str, int | None, float, Iterable[str]]],
                 normalised: bool = False):
        """``entries``: (item id, title, year, engagement weight, alternative titles); with ``normalised`` the
        titles are already :func:`normalise_title`'s keys (a large catalogue caches them: normalising a
        million titles took 20 s here)."""
        self.by_norm: dict[str, list[_Entry]] = {}
        self.single_ok: set[str] = set()
        by_norm = self.by_norm
        for item_id, title, year, weight, akas in entries:
            for t in (title, *akas):
                norm = t if normalised else normalise_title(t)
                if not norm:
                    continue
                entry = _Entry(item_id, year, weight)
                hit = by_norm.get(norm)
                if hit is None:
                    by_norm[norm] = [entry]
                else:
                    hit.append(entry)
        for norm in self.by_norm:
            if " " not in norm and norm not in COMMON and len(norm) >= 3 and not norm.isdigit():
                self.single_ok.add(norm)
        # +1: text may carry the leading article the index drops
        self.max_words = min(MAX_WORDS, max((n.count(" ") + 1 for n in self.by_norm), default=1) + 1)

    def resolve(self, title: str, year: int | None = None) -> str | None:
        """One title (+ year) to an id, or None."""
        entries = self.by_norm.get(normalise_title(title))
        return self._pick(entries, year) if entries else None

    @staticmethod
    def _near(entries: list[_Entry], year: int) -> list[_Entry]:
        """The entries whose year is within one of ``year`` (release dates differ by country)."""
        return [e for e in entries if e.year is not None and abs(e.year - year) <= 1]

    @staticmethod
    def _pick(entries: list[_Entry], year: int | None) -> str:
        if year is not None:
            exact = [e for e in entries if e.year == year]
            entries = exact or TitleIndex._near(entries, year) or entries
        return max(entries, key=lambda e: (e.weight, -(e.year or 0))).item_id

    def find(self, text: str) -> list[Mention]:
        """Titles mentioned in ``text``, longest match first, non-overlapping, in text order."""
        words = [(m.start(), m.end()) for m in re.finditer(r"[\w'’&]+", text)]
        norms = [normalise_title(text[s:e]) for s, e in words]
        out: list[Mention] = []
        i = 0
        while i < len(words):
            hit = None
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                parts = [p for p in norms[i : i + n] if p]
                if not parts:
                    continue
                key = " ".join(parts)
                if key in ARTICLES:
                    continue
                if parts[0] in ARTICLES:  # the index stores titles without their leading article
                    key = " ".join(parts[1:])
                if key not in self.by_norm:
                    continue
                start, end = words[i][0], words[i + n - 1][1]
                ym = re.match(r"\s*\(\s*(\d{4})\s*\)", text[end:])
                year = int(ym.group(1)) if ym else None
                # "It (2017)", "Avatar (2009) is...": a catalogue title with its own year is evidence enough
                dated = year is not None and bool(self._near(self.by_norm[key], year))
                if (n == 1 or (n == 2 and norms[i] in ARTICLES)) and not dated:
                    raw = text[words[i + n - 1][0] : words[i + n - 1][1]]
                    # "The Thing" (article + capital) is evidence enough; a bare word must be uncommon
                    trusted = key in self.single_ok or (n == 2 and len(key) >= 3)
                    if not trusted or not raw[:1].isupper() or _sentence_start(text, words[i][0]):
                        continue
                if ym:
                    end += ym.end()
                elif not _looks_like_title(text, words[i : i + n]):
                    continue
                hit = (n, Mention(start, end, self._pick(self.by_norm[key], year), text[start:end]))
                break
            if hit:
                out.append(hit[1])
                i += hit[0]
                while i < len(words) and words[i][0] < hit[1].end:
                    i += 1
            else:
                i += 1
        return out


def _sentence_start(text: str, pos: int) -> bool:
    """True when ``pos`` opens a sentence, where capitals say nothing about titles."""
    before = text[:pos].rstrip(" \"'“‘(")
    return not before or before[-1] in ".!?\n"


def _looks_like_title(text: str, span: list[tuple[int, int]]) -> bool:
    """Written like a title: some word after the first is capitalised ("Scary Movie"), or the first
    word is, away from a sentence start. Lower-case phrases ("a scary movie") are ordinary words."""
    caps = [text[s:e][:1].isupper() for s, e in span]
    if any(caps[1:]):
        return True
    return caps[0] and not _sentence_start(text, span[0][0])
