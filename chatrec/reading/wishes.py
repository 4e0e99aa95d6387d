"""Hard and soft wishes beyond genres and people, read from free text. Pure.

* **Years**: decades ("the 90s", "'80s", "the 1940s", "the seventies", "late 90s"), bounds ("before 1970",
  "after 2010", "2015 or later", "since 2015", "older than 1980"), spans ("between 1995 and 2005",
  "1995-2005"), a single year ("from 1994", "made in 2005"), and the vague "recent" (the catalogue's last
  RECENT_YEARS years) and "old"/"classic"/"vintage" (before OLD_BEFORE).
* **Runtime**: "under 90 minutes" (≤ 89), "less than two hours", "at most 100 min", "over 2 hours",
  "a short movie"/"something quick" (≤ SHORT), "not too long"/"too long" (≤ NOT_LONG), "a long film" (≥ LONG).
* **Quality**: "highly rated", "acclaimed" → high; "hidden gem", "underrated", "little-known" → gem.
* **Mood**: "something lighter", "less dark", "cheer me up" → lighter; "something darker" → darker.
* **Soft dislikes**: "nothing too gory", "not too violent", "nothing depressing" → the catalogue's own tags
  for it (gore, splatter, violence, depressing, …), liked or disliked with the same negation reading as
  genres (:func:`soft_finder`, a finder for the clause scan); "too X" is always a dislike.

:func:`find_wishes` returns :class:`Wish` spans; the rule reader masks them with placeholders so the
lexicon's negation scan gives each its polarity ("nothing before 1980" is 1980 or later), their words do not
count as genre cues, and they leave the semantic query ("a comedy from the 80s" embeds "a comedy").
Not handled: relative dates ("last year"), runtimes as ranges ("90 to 120 minutes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatrec.core.constraints import Constraint, Quality, Runtime, Years

RECENT_YEARS = 5
OLD_BEFORE = 1980
SHORT = 95
NOT_LONG = 120
LONG = 150

_WORD_DECADES = {
    "twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960, "seventies": 1970,
    "eighties": 1980, "nineties": 1990, "noughties": 2000, "aughts": 2000, "two thousands": 2000,
}
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "ninety": 90, "hundred": 100,
                 "one and a half": 1.5, "an hour and a half": 1.5, "half an": 0.5}
_DECADE = (r"(?:(?P<part>early|mid|late)[- ]?)?(?:(?P<century>1[89]|20)(?P<d>\d)0\s?['’]?s|['’]?(?P<d2>\d)0\s?['’]?s|"
           r"(?P<word>" + "|".join(_WORD_DECADES) + r"))")
_YEAR = r"(?P<y>(?:18|19|20)\d\d)"
_EDGE = r"(?<![\w@§])"


@dataclass(frozen=True)
class Wish:
    start: int
    end: int
    kind: str  # "years" | "runtime" | "quality" | "mood" | "soft"
    value: object  # years/runtime: (lo, hi); quality: level; mood: "lighter"/"darker"; soft: tuple of words
    text: str
    fixed: bool = False  # its own words say what to avoid ("too gory", "too long"): negation does not flip it


def decade_span(m: re.Match) -> tuple[int, int]:
    if m.group("word"):
        start = _WORD_DECADES[m.group("word").lower()]
    elif m.group("century"):
        start = int(m.group("century")) * 100 + int(m.group("d")) * 10
    else:
        d = int(m.group("d2"))
        start = 2000 + d * 10 if d <= 1 else 1900 + d * 10  # "00s", "10s"; "20s" is the 1920s
    part = (m.group("part") or "").lower()
    if part == "early":
        return start, start + 3
    if part == "mid":
        return start + 3, start + 6
    if part == "late":
        return start + 6, start + 9
    return start, start + 9


def _span_of(text: str) -> tuple[int, int] | None:
    """A decade or a year, as (first, last) year."""
    m = re.fullmatch(_DECADE, text.strip(), re.I)
    if m:
        return decade_span(m)
    m = re.fullmatch(_YEAR, text.strip())
    return (int(m.group("y")), int(m.group("y"))) if m else None


_WHEN = rf"(?:the\s+)?(?:{_DECADE}|{_YEAR})"
_BEFORE = re.compile(rf"{_EDGE}(?P<cue>before|pre-?|earlier than|older than|prior to|until|till|up to|up until|through|"
                     rf"no later than|not after)\s*(?P<when>{_WHEN})\b", re.I)
_AFTER = re.compile(rf"{_EDGE}(?P<cue>after|post-?|since|newer than|later than|more recent than|no earlier than|"
                    rf"not before|from)\s*(?P<when>{_WHEN})(?P<on>\s+(?:on|onwards?|forward|and (?:up|after|later|"
                    rf"beyond)))?\b", re.I)
_OR_LATER = re.compile(rf"{_EDGE}(?P<when>{_YEAR}|(?:the\s+)?{_DECADE})\s*(?:or|and|&)\s*(?P<dir>later|after|newer|up|"
                       rf"beyond|onwards?|earlier|before|older|prior)\b|{_EDGE}(?P<plus>(?:18|19|20)\d\d)\+", re.I)
_BETWEEN = re.compile(rf"{_EDGE}(?:between|from)\s+(?P<a>(?:18|19|20)\d\d)\s+(?:and|to|until|till|-|–)\s+"
                      rf"(?P<b>(?:18|19|20)\d\d)\b|{_EDGE}(?P<c>(?:18|19|20)\d\d)\s*[-–]\s*(?P<e>(?:18|19|20)\d\d)\b",
                      re.I)
_DECADE_ALONE = re.compile(rf"{_EDGE}(?:(?:from|in|of|during)\s+)?(?:the\s+)?{_DECADE}(?![\w-])", re.I)
_YEAR_ALONE = re.compile(rf"(?:{_EDGE}(?:from|in|made in|released in|of|circa)\s+){_YEAR}\b(?!\s*\))", re.I)
_RECENT = re.compile(rf"{_EDGE}(?:recent(?:ly released)?|latest|newer|new releases?|brand new)\b", re.I)
_OLD = re.compile(rf"{_EDGE}(?<!modern )(?:old(?:er)?|classic|vintage|golden[- ]age|oldies?|black and white)\b"
                  r"(?!\s*(?:west|school|man|woman|friends?|times|days|age|lady|people|couple|movie star)\b)", re.I)

_DURATION = r"(?P<n>\d+(?:\.\d+)?|an hour and a half|one and a half|half an|an?|one|two|three|four|ninety|hundred)\s*" \
            r"(?P<unit>hours?|hrs?|h|minutes?|mins?|m)\b"
_SHORTER = re.compile(rf"{_EDGE}(?P<cue>under|less than|shorter than|below|no (?:more|longer) than|at most|max(?:imum)?|"
                      rf"up to|within|not (?:more|longer) than)\s+(?:about\s+)?{_DURATION}", re.I)
_LONGER = re.compile(rf"{_EDGE}(?P<cue>over|more than|longer than|at least|above|no (?:less|shorter) than)\s+"
                     rf"{_DURATION}", re.I)
_SHORT = re.compile(rf"{_EDGE}(?:(?:short|quick|brief)\s+(?:movies?|films?|ones?|watch|flicks?)|something (?:short|quick))\b",
                    re.I)
_TOO_LONG = re.compile(rf"{_EDGE}(?:too long|too lengthy|overly long|long-winded)\b", re.I)
_LONG = re.compile(rf"{_EDGE}(?:(?:long|lengthy)\s+(?:movies?|films?|ones?|epics?|watch)|epic[- ]length|something long)\b",
                   re.I)

_QUALITY_HIGH = re.compile(rf"{_EDGE}(?:highly (?:rated|regarded|acclaimed|recommended)|high[- ]rated|well[- ]rated|top[- ]rated|best[- ]rated|"
                           rf"critically acclaimed|acclaimed|award[- ]winning|oscar[- ]winning|must[- ]see|"
                           rf"(?:great|good|rave) reviews)\b", re.I)
_QUALITY_GEM = re.compile(rf"{_EDGE}(?:hidden gems?|underrated|under the radar|lesser[- ]known|little[- ]known|obscure|"
                          rf"overlooked|under[- ]appreciated|not (?:very |too |that )?(?:well[- ]known|mainstream|"
                          rf"popular))\b", re.I)
_LIGHTER = re.compile(rf"{_EDGE}(?:something lighter|lighter|less (?:dark|heavy|serious|depressing|intense|grim)|"
                      rf"cheer (?:me|us) up|more (?:upbeat|cheerful|fun|light)|something happier|happier)\b", re.I)
_DARKER = re.compile(rf"{_EDGE}(?:something darker|darker|more (?:serious|intense|dark|grim|heavy)|"
                     rf"something heavier|heavier)\b", re.I)

#: soft dislikes: the user's word → tag words the catalogue may carry for it (only tags it has are used)
SOFT_TAGS: dict[str, tuple[str, ...]] = {
    r"gor(?:e|y)|gruesome|grisly|splatter|blood(?:y|bath)?|guts": ("gore", "splatter", "gruesome", "bloody", "blood",
                                                                 "graphic violence", "body horror"),
    r"violen(?:t|ce)|brutal(?:ity)?": ("violence", "violent", "brutality", "brutal", "graphic violence"),
    r"depressing|bleak|downers?|tragic|sad": ("depressing", "depression", "bleak", "tragedy", "sad"),
    r"disturbing": ("disturbing", "psychological torture"),
    r"nudity|sex(?:ual)?|explicit|steamy": ("nudity", "sex", "sexuality", "explicit sex", "erotic"),
    r"swearing|profanity|cursing": ("profanity", "swearing"),
}
_SOFT = [(re.compile(rf"{_EDGE}(?P<too>too\s+|overly\s+|so\s+)?(?:{w})(?![\w-])", re.I), tags) for w, tags in SOFT_TAGS.items()]


def find_wishes(text: str, latest_year: int | None = None) -> list[Wish]:
    """Every hard wish and mood in ``text``, earliest first, non-overlapping (the longest wins).

    ``latest_year``: the catalogue's newest year ("recent" counts back from it; None: no "recent" reading)."""
    found: list[Wish] = []
    for m in _BETWEEN.finditer(text):
        a, b = (int(m.group("a")), int(m.group("b"))) if m.group("a") else (int(m.group("c")), int(m.group("e")))
        found.append(Wish(m.start(), m.end(), "years", (min(a, b), max(a, b)), m.group(0)))
    for m in _BEFORE.finditer(text):
        span = _span_of(re.sub(r"^the\s+", "", m.group("when"), flags=re.I))
        if span:
            inclusive = m.group("cue").lower() in ("until", "till", "up to", "up until", "through", "no later than",
                                                   "not after")
            found.append(Wish(m.start(), m.end(), "years", (None, span[1] if inclusive else span[0] - 1), m.group(0)))
    for m in _AFTER.finditer(text):
        span = _span_of(re.sub(r"^the\s+", "", m.group("when"), flags=re.I))
        if not span:
            continue
        cue = m.group("cue").lower()
        if cue == "from" and not m.group("on"):
            continue  # "from 1994" is that year, "from the 90s" that decade: the plain finders read them
        inclusive = cue in ("since", "from", "no earlier than", "not before")
        found.append(Wish(m.start(), m.end(), "years", (span[0] if inclusive else span[1] + 1, None), m.group(0)))
    for m in _OR_LATER.finditer(text):
        if m.group("plus"):
            found.append(Wish(m.start(), m.end(), "years", (int(m.group("plus")), None), m.group(0)))
            continue
        span = _span_of(re.sub(r"^the\s+", "", m.group("when"), flags=re.I))
        if span:
            later = m.group("dir").lower() in ("later", "after", "newer", "up", "beyond", "on", "onward", "onwards")
            found.append(Wish(m.start(), m.end(), "years", (span[0], None) if later else (None, span[1]), m.group(0)))
    for m in _DECADE_ALONE.finditer(text):
        found.append(Wish(m.start(), m.end(), "years", decade_span(m), m.group(0)))
    for m in _YEAR_ALONE.finditer(text):
        y = int(m.group("y"))
        found.append(Wish(m.start(), m.end(), "years", (y, y), m.group(0)))
    if latest_year:
        for m in _RECENT.finditer(text):
            found.append(Wish(m.start(), m.end(), "years", (latest_year - RECENT_YEARS + 1, None), m.group(0)))
    for m in _OLD.finditer(text):
        found.append(Wish(m.start(), m.end(), "years", (None, OLD_BEFORE - 1), m.group(0)))
    for m in _SHORTER.finditer(text):
        minutes = _minutes(m)
        strict = m.group("cue").lower() in ("under", "less than", "shorter than", "below")
        found.append(Wish(m.start(), m.end(), "runtime", (None, minutes - 1 if strict else minutes), m.group(0)))
    for m in _LONGER.finditer(text):
        minutes = _minutes(m)
        strict = m.group("cue").lower() in ("over", "more than", "longer than", "above")
        found.append(Wish(m.start(), m.end(), "runtime", (minutes + 1 if strict else minutes, None), m.group(0)))
    for m in _TOO_LONG.finditer(text):
        found.append(Wish(m.start(), m.end(), "runtime", (None, NOT_LONG), m.group(0), fixed=True))
    for m in _SHORT.finditer(text):
        found.append(Wish(m.start(), m.end(), "runtime", (None, SHORT), m.group(0)))
    for m in _LONG.finditer(text):
        found.append(Wish(m.start(), m.end(), "runtime", (LONG, None), m.group(0)))
    for m in _QUALITY_GEM.finditer(text):
        found.append(Wish(m.start(), m.end(), "quality", "gem", m.group(0), fixed=True))
    for m in _QUALITY_HIGH.finditer(text):
        found.append(Wish(m.start(), m.end(), "quality", "high", m.group(0)))
    for m in _LIGHTER.finditer(text):
        found.append(Wish(m.start(), m.end(), "mood", "lighter", m.group(0), fixed=True))
    for m in _DARKER.finditer(text):
        found.append(Wish(m.start(), m.end(), "mood", "darker", m.group(0), fixed=True))
    # the longest reading of overlapping phrases wins: "made in 2005 or earlier" is "2005 or earlier"
    found.sort(key=lambda w: (-(w.end - w.start), w.start))
    out: list[Wish] = []
    for w in found:
        if not any(w.start < o.end and o.start < w.end for o in out):
            out.append(w)
    return sorted(out, key=lambda w: w.start)


def soft_finder(tags: set[str]):
    """A mention finder for the clause scan: soft-dislike words ("gory", "violent", "depressing"), keyed
    ``soft:N`` (``soft:N!`` for "too X", always a dislike), only for word groups the catalogue has tags for.
    Their words stay in the clause, so "gory" still reads as a horror cue too."""
    groups = [(n, rx, tuple(t for t in group_tags if t in tags)) for n, (rx, group_tags) in enumerate(_SOFT)]
    groups = [g for g in groups if g[2]]

    def find(clause: str) -> list[tuple[int, str, str, bool]]:
        out = []
        for n, rx, _ in groups:
            for m in rx.finditer(clause):
                out.append((m.start(), f"soft:{n}{'!' if m.group('too') else ''}", m.group(0), False))
        return out

    find.tags = {f"soft:{n}": have for n, _, have in groups}
    return find


def _minutes(m: re.Match) -> int:
    raw = m.group("n").lower()
    n = float(raw) if raw[0].isdigit() else _NUMBER_WORDS.get(raw, 1)
    unit = m.group("unit").lower()
    return int(round(n * 60 if unit.startswith("h") else n))


def constraint_of(wish: Wish, negated: bool) -> Constraint | None:
    """The hard constraint a years/runtime/quality wish states, read with its polarity (None for the rest).

    A negated open bound is turned around ("nothing before 1980" is "1980 or later"); a negated span stays
    a negated span ("not from the 80s")."""
    negated = negated and not wish.fixed
    if wish.kind == "years":
        lo, hi = wish.value
        if negated and (lo is None) != (hi is None):
            return Years(lo=hi + 1, hi=None) if lo is None else Years(lo=None, hi=lo - 1)
        return Years(lo=lo, hi=hi, negated=negated)
    if wish.kind == "runtime":
        lo, hi = wish.value
        if negated:  # "not under 90 minutes", "nothing short"
            if lo is None and hi is not None:
                return Runtime(lo=hi + 1, hi=None)
            if hi is None and lo is not None:
                return Runtime(lo=None, hi=lo - 1)
        return Runtime(lo=lo, hi=hi)
    if wish.kind == "quality":
        return None if negated else Quality(level=wish.value)
    return None
