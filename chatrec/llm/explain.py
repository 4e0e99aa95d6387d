"""Explanations of the picks: streamed from the LLM, grounded in each pick's breakdown, checked.

The model sees the picks as delimited data (one fact line each: title, year, genres and the
breakdown in words) and is asked for one line per pick. After generation the text is reviewed:

- an empty answer, or one that names a catalogue title outside the list, is replaced as a whole
  by a template built from the breakdown (an off-list title may come from injected text);
- each line about a pick must state only that pick's facts: its own title and year, genres and
  matched tags it has, and the breakdown's claims ("close to what you asked for" needs S, "popular"
  needs B). A line that does not is replaced by the pick's fact line; a free line with a false
  year is dropped; picks the model skipped get their fact line appended. If no line of the
  model's survives, the whole template is used.

So every pick always gets a reason and no stated fact is one the breakdown does not hold. The
stream yields :class:`Chunk` events: ``token`` pieces as they arrive, more ``token`` pieces for
appended lines, and, when a line had to be replaced, one ``replace`` event with the whole text.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chatrec.core.items import tag_key
from chatrec.core.preferences import GENRES
from chatrec.llm.backends import ChatBackend, LLMError
from chatrec.llm.prompts import load_prompt, wrap_data
from chatrec.reading.titles import TitleIndex, normalise_title

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    kind: str  # "token" | "replace"
    text: str


# The breakdown levels behind reason()'s words; the review holds the model's lines to the same ones.
CLOSE = 0.6  # S: "close to what you asked for"
POPULAR = 0.6  # B: "popular and well rated"
LIKED = 0.35  # B: "well liked by others"


def reason(rec, liked_items: Sequence[str] = ()) -> str:
    """A short, checkable reason from one recommendation's breakdown."""
    b = rec.breakdown
    parts = []
    if b.matched_tags:
        parts.append("matches " + ", ".join(b.matched_tags[:3]))
    if b.similarity >= CLOSE:
        parts.append("close to what you asked for")
    if b.behaviour >= POPULAR:
        parts.append("popular and well rated")
    elif b.behaviour >= LIKED:
        parts.append("well liked by others")
    if b.penalty > 0:
        parts.append("but has " + ", ".join(b.disliked_tags) + " you said you dislike")
    if not parts:
        genres = ", ".join(rec.item.genres[:2]) or "a different direction"
        parts.append(f"something different: {genres}")
    return "; ".join(parts)


def template_line(n: int, rec, weights: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> str:
    """Pick ``n``'s reason with its score, in the weights actually applied."""
    b = rec.breakdown
    ws, wb, wc = weights
    return (f"{n}. {rec.item.display_title}: {reason(rec)} "
            f"(score {b.score:.2f} = {ws:g}·S {b.similarity:.2f} + {wb:g}·B {b.behaviour:.2f} + {wc:g}·C {b.content:.2f}"
            + (f" − {b.penalty:.2f}" if b.penalty else "") + ").")


def template(recs: Sequence, weights: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> str:
    return "\n".join(template_line(n, rec, weights) for n, rec in enumerate(recs, 1))


def picks_block(recs: Sequence) -> str:
    """The facts the model may use, one compact line per pick: genres and the breakdown in words.

    Compact on purpose: the bundled model reads prompts at ~150 tokens/s on 2 cores, so every fact
    costs time to the first token (README "Speed").
    """
    return "\n".join(fact_line(n, rec) for n, rec in enumerate(recs, 1))


def fact_line(n: int, rec) -> str:
    """Pick ``n``'s facts as the model is given them; also what replaces a wrong line of its answer."""
    it = rec.item
    genres = ", ".join(it.genres[:3]) or "n/a"
    return f"{n}. {it.display_title} — {genres}; {reason(rec)}"


# Small models also echo a delimiter with one bracket short ("PICKS>>").
_MARKER_LINE = re.compile(r"^\s*(<{2,3}[A-Z ]*|[A-Z ]*>{2,3})\s*$")
_MAYBE_MARKER = re.compile(r"^\s*(<{1,3}[A-Z ]*|[A-Z ]*>{0,3})$")


def strip_markers(pieces: Iterator[str]) -> Iterator[str]:
    """Drop echoed data delimiters (``<<<PICKS`` / ``PICKS>>>`` lines) from a token stream.

    Small models copy the prompt's delimiters. Only the start of a line is held back, and only while
    it could still be such a marker; everything else streams through as it arrives.
    """
    line = ""  # the held-back start of the current line
    holding = True
    for piece in pieces:
        for part in re.split(r"(\n)", piece):
            if not part:
                continue
            if part == "\n":
                if holding and _MARKER_LINE.match(line):
                    line = ""
                else:
                    yield line + "\n"
                    line = ""
                holding = True
                continue
            if holding:
                line += part
                if _MAYBE_MARKER.match(line):
                    continue
                holding = False
                part, line = line, ""
            yield part
    if line and not _MARKER_LINE.match(line):
        yield line


@dataclass(frozen=True)
class ExplainContext:
    request: str = ""
    liked_titles: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    constraints: str = ""
    weights: tuple[float, float, float] = (0.5, 0.3, 0.2)


@dataclass(frozen=True)
class Line:
    pick: int | None
    text: str
    source: str  # "model" | "facts"


@dataclass
class Outcome:
    lines_written: int = 0
    lines_kept: int = 0
    lines_restating_reason: int = 0
    withdrawn: bool = False
    fallback_reason: str | None = None
    repairs: tuple = ()
    first_visible_s: float | None = None
    seconds: float = 0.0


class Explanation:
    """One explanation: its reviewed lines, generated lazily while iterating, and its own outcome."""

    def __init__(self, lines: Iterator[Line], outcome: Outcome):
        self._lines = lines
        self.outcome = outcome

    def __iter__(self) -> Iterator[Line]:
        return self._lines

    def text(self) -> str:
        return "\n".join(line.text for line in self)


def figures(outcomes: Sequence[Outcome]) -> dict:
    """The benchmark's explanation figures over many explanations."""
    import numpy as np

    firsts = [o.first_visible_s for o in outcomes if o.first_visible_s is not None]
    ms = np.array(firsts) * 1000 if firsts else np.array([0.0])
    return {
        "explanation_lines": sum(o.lines_written for o in outcomes),
        "explanation_lines_kept": sum(o.lines_kept for o in outcomes),
        "explanation_lines_restating_reason": sum(o.lines_restating_reason for o in outcomes),
        "explanations_withdrawn": sum(o.withdrawn for o in outcomes),
        "explain_first_visible_token": {"p50_ms": round(float(np.percentile(ms, 50)), 2),
                                        "p95_ms": round(float(np.percentile(ms, 95)), 2)},
    }


class Explainer:
    # 150: three picks' lines took 51-104 tokens in 20 bench requests; at 90, 7 of 20 were cut mid-sentence
    def __init__(self, backend: ChatBackend | None, titles: TitleIndex | None = None, max_tokens: int = 150,
                 explain_top: int = 3):
        self.backend = backend
        self.titles = titles
        self.max_tokens = max_tokens
        self.explain_top = explain_top  # the model explains the first few; every pick has its template reason
        self.last_first_token_s: float | None = None
        self.last_fallback_reason: str | None = None  # why the whole answer became the template
        self.last_repairs: tuple[Problem, ...] = ()  # false statements corrected line by line

    def explain(self, recs: Sequence, context: ExplainContext) -> Explanation:
        """The reviewed lines of one explanation (interim: the whole answer is reviewed before any line)."""
        outcome = Outcome()
        recs = list(recs)

        def lines() -> Iterator[Line]:
            t0 = time.perf_counter()
            if not recs:
                return
            if self.backend is None:
                outcome.fallback_reason = "no LLM configured"
                for n, rec in enumerate(recs, 1):
                    if outcome.first_visible_s is None:
                        outcome.first_visible_s = time.perf_counter() - t0
                    yield Line(n - 1, template_line(n, rec, context.weights), "facts")
                outcome.seconds = time.perf_counter() - t0
                return
            pieces = []
            try:
                for piece in strip_markers(self.backend.stream(self.messages(recs, context.request),
                                                               max_tokens=self.max_tokens)):
                    pieces.append(piece)
            except LLMError as exc:
                log.warning("explanation failed, using the template: %s", exc)
                outcome.fallback_reason = f"LLM failed: {exc}"
                outcome.withdrawn = True
                for n, rec in enumerate(recs, 1):
                    yield Line(n - 1, template_line(n, rec, context.weights), "facts")
                outcome.seconds = time.perf_counter() - t0
                return
            answer = "".join(pieces)
            review = self.review(answer, recs)
            outcome.lines_written = len(_units(answer))
            outcome.repairs = review.repairs
            if review.fatal:
                outcome.fallback_reason, outcome.withdrawn = review.fatal, True
                for n, rec in enumerate(recs, 1):
                    yield Line(n - 1, template_line(n, rec, context.weights), "facts")
            else:
                model_units = set(_units(answer))
                for unit in _units(review.text):
                    kept = unit in model_units
                    outcome.lines_kept += kept
                    if outcome.first_visible_s is None:
                        outcome.first_visible_s = time.perf_counter() - t0
                    yield Line(None, unit, "model" if kept else "facts")
            outcome.seconds = time.perf_counter() - t0

        return Explanation(lines(), outcome)

    def messages(self, recs: Sequence, request: str) -> list[tuple[str, str]]:
        system = load_prompt("system") + "\n\n" + load_prompt("explanation")
        user = wrap_data("request", request) + "\n" + wrap_data("picks", picks_block(recs[: self.explain_top]))
        return [("system", system), ("user", user)]

    def stream(self, recs: Sequence, request: str = "") -> Iterator[Chunk]:
        """Tokens as they come, then the review's corrections (see the module docstring)."""
        self.last_first_token_s = None
        self.last_fallback_reason = None
        self.last_repairs = ()
        recs = list(recs)
        if not recs:
            return
        if self.backend is None:
            self.last_fallback_reason = "no LLM configured"
            yield Chunk("token", template(recs))
            return
        t0 = time.perf_counter()
        pieces: list[str] = []
        try:
            raw = self.backend.stream(self.messages(recs, request), max_tokens=self.max_tokens)
            for piece in strip_markers(raw):
                if self.last_first_token_s is None:
                    self.last_first_token_s = time.perf_counter() - t0
                pieces.append(piece)
                yield Chunk("token", piece)
        except LLMError as exc:
            log.warning("explanation failed, using the template: %s", exc)
            self.last_fallback_reason = f"LLM failed: {exc}"
            yield Chunk("replace", template(recs))
            return
        answer = "".join(pieces)
        review = self.review(answer, recs)
        if review.fatal:
            log.info("explanation rejected (%s); using the template", review.fatal)
            self.last_fallback_reason = review.fatal
            yield Chunk("replace", template(recs))
            return
        self.last_repairs = review.repairs
        if review.repairs:
            log.info("explanation corrected: %s", "; ".join(map(str, review.repairs)))
        if review.text.startswith(answer):  # only lines appended for skipped picks: no need to redraw
            if review.text != answer:
                yield Chunk("token", review.text[len(answer):])
        else:
            yield Chunk("replace", review.text)

    def explain_text(self, recs: Sequence, request: str = "") -> str:
        text = ""
        for chunk in self.stream(recs, request):
            text = chunk.text if chunk.kind == "replace" else text + chunk.text
        return text

    def check(self, text: str, recs: Sequence) -> str | None:
        """Why ``text`` is not acceptable as it stands, or None (the first problem the review finds)."""
        review = self.review(text, recs)
        return review.fatal or (str(review.repairs[0]) if review.repairs else None)

    def review(self, text: str, recs: Sequence) -> "Review":
        """``text`` checked against the picks' facts, and corrected line by line where it can be."""
        recs = list(recs)
        if not text.strip() or len(re.findall(r"\w+", text)) < 3:
            return Review(text, fatal="empty answer")
        fatal = self._off_list(text, recs)
        if fatal:
            return Review(text, fatal=fatal)
        facts = _Facts(recs)
        judged = []  # (unit, the pick it is about, what is false in it)
        for unit in _units(text):
            pick, problem = facts.attribute(unit)
            judged.append((unit, pick, problem or facts.problem(unit, pick)))
        repairs = tuple(problem for _, _, problem in judged if problem)
        shown = {pick for _, pick, _ in judged if pick is not None}
        skipped = [p for p in range(min(self.explain_top, len(recs))) if p not in shown]
        if not repairs:
            extra = "\n".join(fact_line(p + 1, recs[p]) for p in skipped)
            return Review(text + ("" if text.endswith("\n") else "\n") + extra if extra else text)
        if all(problem for _, pick, problem in judged if pick is not None):
            return Review(text, fatal=f"no line was right: {repairs[0]}")
        # Rebuild in pick order; the model's free lines before and after its pick lines stay there.
        first = next(i for i, (_, pick, _) in enumerate(judged) if pick is not None)
        free = [(i, unit) for i, (unit, pick, problem) in enumerate(judged) if pick is None and not problem]
        lines = [unit for i, unit in free if i < first]
        for p in sorted(shown | set(skipped)):
            good = next((unit for unit, pick, problem in judged if pick == p and not problem), None)
            lines.append(good if good is not None else fact_line(p + 1, recs[p]))
        lines += [unit for i, unit in free if i > first]
        return Review("\n".join(lines), repairs=repairs)

    def _off_list(self, text: str, recs: Sequence) -> str | None:
        """An item named that is not on the list: the whole answer is suspect (it may echo injected text)."""
        allowed = {normalise_title(r.item.title) for r in recs} | {
            normalise_title(a) for r in recs for a in r.item.aka
        }
        allowed_ids = {r.item.id for r in recs}
        # Genre and tag words of the picks are facts, not titles ("Romance" is also a 1999 film).
        facts = {normalise_title(t) for r in recs for t in (*r.item.genres, *r.breakdown.matched_tags)}
        if self.titles is not None:
            for m in self.titles.find(text):
                mention = normalise_title(re.sub(r"\(\d{4}\)", "", m.text))
                if m.item_id not in allowed_ids and mention not in allowed and mention not in facts:
                    return f"names an item not in the list: {m.text!r}"
        # "Title (Year)" patterns must be on the list even when the catalogue does not know them
        for title, _ in _TITLE_YEAR.findall(text):
            norm = normalise_title(title)
            if norm and not any(norm.endswith(a) or a.endswith(norm) for a in allowed if a):
                return f"names an item not in the list: {title!r}"
        return None


@dataclass(frozen=True)
class Problem:
    """A false statement in one line of an answer."""

    kind: str  # "wrong year", "wrong genre", "wrong tag", "unsupported claim", "another pick's title", "no such pick"
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Review:
    text: str  # the answer to show
    repairs: tuple[Problem, ...] = ()  # the false statements that were corrected, one per line
    fatal: str | None = None  # why the whole answer is replaced by the template


_TITLE_YEAR = re.compile(r"([A-Z][\w'’:&\- ]{1,60}?)\s*\((\d{4})\)")
# A unit is a line, or a numbered item that starts after a sentence on the same line ("… fits. 2. Heat …").
_UNIT_START = re.compile(r"\n|(?<=[.!?;])[ \t]+(?=\d{1,2}[.)][ \t])")
_NUMBER = re.compile(r"\s*(\d{1,2})[.)](?:\s|$)")
# "no romance", "not a horror film": a genre named as absent is not claimed
_NEGATED = re.compile(r"(?:\bno|\bnot|\bnon|\bwithout|n't|\bunlike|\binstead of|\brather than)\W+(?:\w+\W+){0,2}$",
                      re.I)
_MATCHES = re.compile(r"\bmatch(?:es|ing)?\s+([^;.\n]+)", re.I)


def _units(text: str) -> list[str]:
    return [u for u in (u.strip() for u in _UNIT_START.split(text)) if u]


class _Facts:
    """What may be said of each pick: its titles, year, genres and tags, and the breakdown's claims."""

    def __init__(self, recs: Sequence):
        self.recs = recs
        # Genre words are claims: the movie genres and whatever genres the listed items carry.
        words = {g.lower() for g in GENRES} | {g.lower() for r in recs for g in r.item.genres}
        self.genres = re.compile(r"(?<![\w-])(" + "|".join(
            re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?![\w-])", re.I)
        self.own = [{tag_key(t) for t in (*r.item.all_tags, *r.breakdown.matched_tags)} for r in recs]
        self.any_own = set().union(*self.own)
        # each pick's titles as written (capitalised as a title, not as a common word)
        self.titles = [[re.compile(r"(?<!\w)" + re.escape(t) + r"(?!\w)") for t in (r.item.title, *r.item.aka) if t]
                       for r in recs]
        self.years = {normalise_title(t): r.item.year for r in recs for t in (r.item.title, *r.item.aka)}

    def names(self, p: int, unit: str) -> bool:
        return any(t.search(unit) for t in self.titles[p])

    def attribute(self, unit: str) -> tuple[int | None, Problem | None]:
        """Which pick ``unit`` is about (its number, else the one pick it names), and a numbering problem."""
        m = _NUMBER.match(unit)
        if m:
            n = int(m.group(1))
            if 1 <= n <= len(self.recs):
                return n - 1, None
            return None, Problem("no such pick", f"line {n} is about no pick: there are {len(self.recs)}")
        named = [p for p in range(len(self.recs)) if self.names(p, unit)]
        return (named[0] if len(named) == 1 else None), None

    def problem(self, unit: str, pick: int | None) -> Problem | None:
        """The first false statement in ``unit``, a line about ``pick`` (None: a free line)."""
        for title, year in _TITLE_YEAR.findall(unit):
            norm = normalise_title(title)
            known = self.years.get(norm) if norm in self.years else next(
                (y for a, y in self.years.items() if a and (norm.endswith(a) or a.endswith(norm))), None)
            if known and int(year) != known:  # a listed title with a made-up year is a false statement
                return Problem("wrong year", f"wrong year for {title.strip()!r}: {year}, not {known}")
        if pick is None:
            return None
        rec, own = self.recs[pick], self.own[pick]
        name = rec.item.display_title
        if not self.names(pick, unit):
            other = next((self.recs[p].item.title for p in range(len(self.recs)) if self.names(p, unit)), None)
            if other:
                return Problem("another pick's title",
                               f"line {pick + 1} is about {other!r}, but pick {pick + 1} is {name}")
        claims = unit
        for titles in self.titles:  # a title's own words are not claims ("Star Wars", "Musical")
            for t in titles:
                claims = t.sub(" ", claims)
        for m in self.genres.finditer(claims):
            if tag_key(m.group(1)) not in own and not _NEGATED.search(claims[: m.start()]):
                return Problem("wrong genre", f"{m.group(1)!r} is not a genre of {name}")
        for m in _MATCHES.finditer(claims):
            for term in map(tag_key, re.split(r",|\band\b|&", m.group(1))):
                # another pick's tag: the facts of two lines swapped (a free phrase is not checked)
                if term in self.any_own and term not in own:
                    return Problem("wrong tag", f"{name} does not match {term!r}")
        b = rec.breakdown
        if re.search(r"close to what you (?:asked|want)", claims, re.I) and b.similarity < CLOSE:
            return Problem("unsupported claim", f"{name} is not close to the request (S {b.similarity:.2f})")
        if re.search(r"\bpopular\b", claims, re.I) and b.behaviour < POPULAR:
            return Problem("unsupported claim", f"{name} is not popular (B {b.behaviour:.2f})")
        return None
