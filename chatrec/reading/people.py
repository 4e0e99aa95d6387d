"""Finding the catalogue's people in free text: "with Tom Hanks", "a Nolan film", "Tarantino's movies",
"starring DiCaprio", "the Coen brothers". Pure.

Names are matched on a normal form (lower case, no accents or punctuation; "Andy García" and "Andy
Garcia" are one person). What is matched, in order of trust:

1. a full name ("tom hanks", also without its space: "di caprio" = "dicaprio");
2. "the X brothers"/"sisters": everyone of that surname with a credit in the same role;
3. a surname ("Nolan", "del Toro"), or a rare first name ("Denzel", "Keanu"), when one person dominates
   it (at least twice the credits of the next, and MIN_CREDITS of their own) and it is not an ordinary
   word ("Stone", "Will" and "Young" stay words), written capitalised or right after a people cue
   ("with", "by", "starring") or as a possessive ("Tarantino's");
4. a misspelt full name (rapidfuzz ratio >= FUZZY over a span of as many words, capitalised or after a
   cue), when no full name matched exactly.

"Will Smith" does not match inside "Good Will Hunting" (a full name must be the whole span, and "Will"
alone is a word); "Jimmy Carr" is not "Jim Carrey" (ratio 80). The role is read from the words around
the name ("directed by", "starring"), else it is the one the person has most credits in ("any" on a tie).
Not handled: nicknames ("Arnie"), and people the catalogue does not list.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from chatrec.reading.titles import COMMON

MIN_CREDITS = 3
FUZZY = 91
MAX_WORDS = 4
#: words that can be surnames or first names but are ordinary words first
ORDINARY = COMMON | set(
    """stone wood woods young king hill hall bell lee long short black white brown green gray grey rose may
    rock ford fox cage love hunt page price wise hope hart banks hardy law lane bond west north strong
    early late dark light day night story star stars star's film movie cinema director actor actress
    brothers sisters bros family action comedy drama horror war crime musical mystery romance western fantasy
    thriller animation documentary children adventure ray ali frida milk nixon patton gandhi capote selena
    chaplin christmas""".split()
)
DIRECTOR_CUES = re.compile(
    r"(?:directed by|direction of|director|directors|made by|helmed by|by|from|filmmaker)\s*$", re.I)
CAST_CUES = re.compile(
    r"(?:with|starring|stars|featuring|feat\.?|actor|actress|played by|plays|acted by|appearing)\s*$", re.I)
AFTER_DIRECTOR = re.compile(r"^\s*(?:'s|’s)?\s*(?:direction|directed|directing)", re.I)
BROTHERS = re.compile(r"^\s*(?:brothers|bros\.?|sisters)\b", re.I)


def normalise_name(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[’'`]s\b", "", text)  # possessive
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Person:
    name: str  # the catalogue's spelling (the most frequent one)
    directed: int
    acted: int

    @property
    def credits(self) -> int:
        return self.directed + self.acted

    def main_role(self) -> str:
        if self.directed > self.acted:
            return "director"
        if self.acted > self.directed:
            return "cast"
        return "any"


@dataclass(frozen=True)
class PersonMention:
    start: int
    end: int
    names: tuple[str, ...]
    role: str  # "director" | "cast" | "any"
    text: str


class PeopleIndex:
    def __init__(self, credits: Iterable[tuple[str, str]] = (), counts: Iterable[tuple[str, int, int]] = ()):
        """``credits``: (name, role) per item credit, role "director" or "cast"; or ``counts``: (name, films
        directed, films acted) per person (a catalogue's postings give these without visiting every credit)."""
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        spellings: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name, role in credits:
            key = normalise_name(name)
            if key:
                totals[key][0 if role == "director" else 1] += 1
                spellings[key][name] += 1
        for name, directed, acted in counts:
            key = normalise_name(name)
            if key:
                totals[key][0] += directed
                totals[key][1] += acted
                spellings[key][name] += directed + acted
        self.people: dict[str, Person] = {
            key: Person(max(spellings[key].items(), key=lambda kv: (kv[1], kv[0]))[0], d, a)
            for key, (d, a) in totals.items()
        }
        self.squashed = {key.replace(" ", ""): key for key in self.people if " " in key}
        by_part: dict[str, list[str]] = defaultdict(list)
        for key in self.people:
            words = key.split()
            if len(words) < 2:
                continue
            for n in range(1, len(words)):  # "del toro" and "toro" for "guillermo del toro"
                by_part[" ".join(words[n:])].append(key)
            by_part[words[0]].append(key)  # the first name
        self.by_part = dict(by_part)
        self.full_names = sorted(k for k in self.people if " " in k)

    def __len__(self) -> int:
        return len(self.people)

    def person(self, name: str) -> Person | None:
        return self.people.get(normalise_name(name))

    def key_of(self, name: str) -> str:
        return normalise_name(name)

    def _dominant(self, part: str) -> str | None:
        """The one person a surname or first name means, if one clearly dominates it."""
        keys = self.by_part.get(part, ())
        ranked = sorted(keys, key=lambda k: -self.people[k].credits)
        if not ranked or self.people[ranked[0]].credits < MIN_CREDITS:
            return None
        if len(ranked) > 1 and self.people[ranked[0]].credits < 2 * self.people[ranked[1]].credits:
            return None
        return ranked[0]

    def _siblings(self, surname: str, role_hint: str | None) -> list[str]:
        """Everyone of this surname with credits ("the Coen brothers": Joel and Ethan Coen)."""
        keys = [k for k in self.by_part.get(surname, ()) if k.split()[-1] == surname.split()[-1]
                and self.people[k].credits >= 1]
        if role_hint == "director" or role_hint is None:
            directors = [k for k in keys if self.people[k].directed]
            if len(directors) >= 2:
                return directors
        return keys if len(keys) >= 2 else []

    def find(self, text: str) -> list[PersonMention]:
        """People named in ``text``, longest match first, non-overlapping, in text order."""
        words = [(m.start(), m.end()) for m in re.finditer(r"[\w'’\-.]+", text)]
        norms = [normalise_name(text[s:e]) for s, e in words]
        out: list[PersonMention] = []
        i = 0
        while i < len(words):
            hit = self._match_at(text, words, norms, i)
            if hit is None:
                i += 1
                continue
            n, mention = hit
            out.append(mention)
            i += n
        return out

    def _match_at(self, text, words, norms, i) -> tuple[int, PersonMention] | None:
        before = text[max(0, words[i][0] - 24):words[i][0]]
        cued = bool(DIRECTOR_CUES.search(before) or CAST_CUES.search(before))
        for n in range(min(MAX_WORDS, len(words) - i), 0, -1):
            parts = [p for p in norms[i:i + n] if p]
            if len(parts) != n:
                continue
            key = " ".join(parts)
            start, end = words[i][0], words[i + n - 1][1]
            raw = text[start:end]
            after = text[end:end + 24]
            capitalised = all(w[:1].isupper() for w in re.findall(r"[\w'’]+", raw) if w.lower() not in
                              ("de", "del", "da", "di", "van", "von", "la", "le", "du"))
            possessive = bool(re.search(r"[’']s$", raw))
            keys: list[str] = []
            if n >= 2 and key in self.people:
                keys = [key]
            elif n >= 2 and key.replace(" ", "") in self.squashed:
                keys = [self.squashed[key.replace(" ", "")]]
            elif BROTHERS.match(after) and key not in ORDINARY:
                keys = self._siblings(key, _role_hint(before, after))
                if keys:  # "the Coen brothers": the mention covers "brothers" too
                    end += BROTHERS.match(after).end()
            elif key not in ORDINARY and len(key) >= 3 and (capitalised or cued or possessive):
                dominant = self._dominant(key)
                if dominant is not None and (n >= 2 or " " not in key):
                    keys = [dominant]
            if not keys and n >= 2 and (capitalised or cued) and not any(p in ORDINARY for p in parts):
                keys = self._fuzzy(key)
            if keys:
                role = _role_hint(before, after) or self._role(keys)
                names = tuple(self.people[k].name for k in keys)
                return n, PersonMention(start, end, names, role, text[start:end])
        return None

    def _fuzzy(self, key: str) -> list[str]:
        from rapidfuzz import fuzz, process

        best = process.extractOne(key, self.full_names, scorer=fuzz.ratio, score_cutoff=FUZZY)
        if best is None:
            return []
        match = best[0]
        if match.count(" ") != key.count(" ") and match.replace(" ", "") != key.replace(" ", ""):
            return []
        return [match] if self.people[match].credits >= MIN_CREDITS else []

    def _role(self, keys: list[str]) -> str:
        roles = {self.people[k].main_role() for k in keys}
        return roles.pop() if len(roles) == 1 else "any"


def _role_hint(before: str, after: str) -> str | None:
    if DIRECTOR_CUES.search(before) or AFTER_DIRECTOR.match(after):
        return "director"
    if CAST_CUES.search(before):
        return "cast"
    return None
