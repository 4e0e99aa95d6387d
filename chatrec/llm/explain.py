"""Explanations of the picks: one short line per pick that ties it to the request, checked before it is shown.

The reason column (:func:`reason`) already says which liked tags a pick matches and what its score
components are. An explanation must add to that, so the model is given a small task it can do: for one pick
at a time, one sentence from that pick's own facts (its overview's first sentence, keywords and tags that
are not already in the reason) and the user's request. The task is short per pick, so the first line is
shown after one short prompt, and the model never sees another pick's facts (the 135M model used to copy
them across lines).

Grounding is by construction where the backend allows it: the local backend gets a GBNF grammar per pick
(:func:`phrase_grammar`, the default strategy "phrases"): the pick's title, one connective from a closed set,
one unbroken stretch of its overview's words, optionally ", with" one or two of its keywords. The model picks
where the stretch starts and ends; it cannot join words that were not adjacent in the pick's own facts.
Genre words the pick lacks, years, "popular" without the behaviour to back it and other picks' title words
break a stretch (:mod:`chatrec.llm.grammar_audit` writes out every line a grammar allows, and none fails the
review). A backend without grammars (the hosted one) gets the same prompt unconstrained. The word-level
grammar :func:`line_grammar` ("words") was measured and dropped (docs/EXPLANATIONS.md).

Every line is then reviewed (:meth:`Explainer.review_line`, the same checks as :meth:`Explainer.review`):
no title off the list, no other pick's title, genre or tag, no year or breakdown claim the pick does not
hold. A line that fails is never shown: it is replaced by the pick's fact line, or dropped when the pick has
no fact beyond its reason. The reasons go to the log and to :class:`Outcome`, never into the chat.

:meth:`Explainer.explain` returns an :class:`Explanation` at once; lines are generated while it is iterated,
and each :class:`Line` is yielded only after its review. The explainer holds no per-call state, so one
instance serves concurrent sessions; each call has its own :class:`Outcome`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from chatrec.core.items import tag_key
from chatrec.core.preferences import GENRES
from chatrec.llm.backends import CUT_MARK, ChatBackend, LLMError
from chatrec.llm.prompts import load_prompt, wrap_data
from chatrec.reading.titles import TitleIndex, normalise_title

log = logging.getLogger(__name__)

# The breakdown levels behind reason()'s words; the review holds the model's lines to the same ones.
CLOSE = 0.6  # S: "close to what you asked for"
POPULAR = 0.6  # B: "popular and well rated"
LIKED = 0.35  # B: "well liked by others"

DEFAULT_WEIGHTS = (0.5, 0.3, 0.2)


# -- the interface ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExplainContext:
    request: str = ""  # what the user asked for this turn
    liked_titles: tuple[str, ...] = ()  # display titles the user liked or named positively
    disliked: tuple[str, ...] = ()  # tags/genres the user wants to avoid
    constraints: str = ""  # what was understood as hard constraints, e.g. "with Tom Hanks · 1990–1999"
    weights: tuple[float, float, float] = DEFAULT_WEIGHTS  # wS, wB, wC actually applied
    # the liked or named titles with their tags and keywords (liked_facts(items) builds it from catalogue items):
    # a pick that shares some of them gets that said ("Shares space marine, alien with Alien.")
    liked_facts: tuple[tuple[str, tuple[str, ...]], ...] = ()


def liked_facts(items) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``ExplainContext.liked_facts`` from catalogue items the user liked or named positively."""
    return tuple((it.title, tuple(it.all_tags)) for it in items)


@dataclass(frozen=True)
class Line:
    pick: int | None  # 0-based index of the pick this line is about; None for a lead/closing sentence
    text: str
    source: str  # "model" (passed the review unchanged) | "facts" (the pick's fact line)


@dataclass
class Outcome:
    """One explanation's own result (complete once its iteration ended)."""

    lines_written: int = 0  # lines the model wrote
    lines_kept: int = 0  # passed the review unchanged
    lines_restating_reason: int = 0  # kept lines that add nothing beyond the pick's reason line
    withdrawn: bool = False  # no line of the model's stood: the answer is fact lines only
    fallback_reason: str | None = None
    repairs: tuple = ()  # the Problems found (for the log and /why, never shown in the chat)
    first_visible_s: float | None = None  # seconds from the call to the first line shown (after review)
    seconds: float = 0.0
    strategy: str = ""
    lines_shown: int = 0
    first_model_line_s: float | None = None  # seconds from the call to the first model line shown
    model_calls: int = 0
    prompt_tokens: int = 0  # as the backend counts them (local: exact), for the study's timing
    completion_tokens: int = 0


class Explanation:
    """Lines generated lazily while iterated; each is yielded after its review. Iterating again replays."""

    def __init__(self, lines: Iterator[Line], outcome: Outcome):
        self.outcome = outcome
        self._source = lines
        self._lines: list[Line] = []
        self._lock = threading.Lock()
        self._done = False

    def __iter__(self) -> Iterator[Line]:
        i = 0
        while True:
            with self._lock:
                if i < len(self._lines):
                    line = self._lines[i]
                elif self._done:
                    return
                else:
                    try:
                        line = next(self._source)
                    except StopIteration:
                        self._done = True
                        return
                    self._lines.append(line)
            i += 1
            yield line

    def text(self) -> str:
        return "\n".join(line.text for line in self)

    def close(self) -> None:
        """Stop generating (a renderer that gives up early); the outcome keeps what was done."""
        with self._lock:
            self._done = True
            self._source.close()


def figures(outcomes: Sequence[Outcome]) -> dict:
    """Bench figures over explanations (the integrator adds ``chat_llm_turn`` from its own timing)."""
    def pct(values):
        if not values:
            return {"p50_ms": None, "p95_ms": None}
        ms = np.array(values) * 1000.0
        return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}

    outcomes = list(outcomes)
    written = sum(o.lines_written for o in outcomes)
    kept = sum(o.lines_kept for o in outcomes)
    restating = sum(o.lines_restating_reason for o in outcomes)
    kinds: dict[str, int] = {}
    for o in outcomes:
        for p in o.repairs:
            kinds[getattr(p, "kind", str(p))] = kinds.get(getattr(p, "kind", str(p)), 0) + 1
    return {
        "explanation_lines": written,
        "explanation_lines_kept": kept,
        "explanation_lines_restating_reason": restating,
        "explanations_withdrawn": sum(o.withdrawn for o in outcomes),
        "explain_first_visible_token": pct([o.first_visible_s for o in outcomes if o.first_visible_s is not None]),
        "explain_first_model_line": pct([o.first_model_line_s for o in outcomes if o.first_model_line_s is not None]),
        "explain_whole_call": pct([o.seconds for o in outcomes]),
        "explanation_lines_kept_share": round(kept / written, 3) if written else None,
        "explanation_lines_restating_share": round(restating / kept, 3) if kept else None,
        "explanation_problems": kinds,
        "explanation_fallbacks": sum(o.fallback_reason is not None for o in outcomes),
        "explanations": len(outcomes),
    }


# -- reasons and templates (no LLM) ----------------------------------------------------------------

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


def template(recs: Sequence, weights: Sequence[float] = DEFAULT_WEIGHTS) -> str:
    """Every pick's reason and its score as the weights actually applied (wS, wB, wC) compute it."""
    ws, wb, wc = (float(w) for w in tuple(weights)[:3])
    lines = []
    for n, rec in enumerate(recs, 1):
        b = rec.breakdown
        lines.append(
            f"{n}. {rec.item.display_title}: {reason(rec)} "
            f"(score {b.score:.2f} = {ws:g}·S {b.similarity:.2f} + {wb:g}·B {b.behaviour:.2f} + {wc:g}·C {b.content:.2f}"
            + (f" − {b.penalty:.2f}" if b.penalty else "") + ")."
        )
    return "\n".join(lines)


def reason_line(rec) -> str:
    """What the pick list already tells about a pick: title, year, genres and its reason."""
    it = rec.item
    genres = ", ".join(it.genres[:3]) or "n/a"
    return f"{it.display_title} — {genres}; {reason(rec)}"


# -- a pick's facts --------------------------------------------------------------------------------

# Catalogue text is data, and a catalogue can carry planted instructions: a sentence, tag or keyword that
# reads like one never becomes a fact the model sees or a fact line shows.
_SUSPECT_CAPS = re.compile(r"\b[A-Z]{5,}\b")  # shouting ("HACKED"); the flag above is case-blind
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'“])")


def _suspect(text: str) -> bool:
    return bool(re.search(r"<<<|>>>|\bignore\b|\binstructions?\b|\bprompt\b|\breveal\b|\bsystem\s*:|"
                          r"\bassistant\b|https?://|\bsay\b", text, re.I) or _SUSPECT_CAPS.search(text))


_MID_CLAUSE = " …"  # a sentence cut inside a clause: its last word does not end a phrase
_JUNK_KEYWORDS = {"aftercreditsstinger", "duringcreditsstinger", "woman director", "independent film"}


@dataclass(frozen=True)
class PickFacts:
    """What may be said of one pick beyond its reason: the overview's first sentences, keywords and tags."""

    title: str
    display: str
    about: tuple[str, ...]  # overview sentences
    keywords: tuple[str, ...]  # keywords and user tags not already in the reason (no genres, no matched tags)

    @property
    def extra(self) -> bool:
        return bool(self.about or self.keywords)

    def block(self) -> str:
        lines = [self.display]
        if self.about:
            lines.append("About: " + " ".join(self.about))
        if self.keywords:
            lines.append("Keywords: " + ", ".join(self.keywords))
        return "\n".join(lines)

    def text(self) -> str:
        return " ".join((self.display, *self.about, *self.keywords))


def overview(item) -> str:
    text = (item.text or "").strip()
    for head in (item.display_title, item.title):
        if head and text.startswith(head):
            return text[len(head):].lstrip(" .:-–—")
    return text


def pick_facts(rec, sentences: int = 1, keywords: int = 6, max_words: int = 40) -> PickFacts:
    it = rec.item
    about: list[str] = []
    words = 0
    for s in _SENTENCE_END.split(overview(it)):
        s = s.strip()
        if not s or _suspect(s):
            continue
        n = len(s.split())
        if about and words + n > max_words:
            break
        if n > max_words:  # one long sentence: cut at a clause boundary near the limit, else mid-clause
            cut = " ".join(s.split()[:max_words])
            comma = cut.rfind(",")
            if comma > len(cut) // 3:
                s = cut[:comma].rstrip(",;: ") + "…"
            else:
                s = cut.rstrip(",;: ") + _MID_CLAUSE
        about.append(s)
        words += n
        if len(about) >= sentences:
            break
    known = {tag_key(g) for g in it.genres} | {tag_key(t) for t in rec.breakdown.matched_tags}
    known |= {tag_key(g) for g in GENRES}
    kws: list[str] = []
    for k in (*it.keywords, *it.tags):
        key = tag_key(k)
        if not key or key in known or key in _JUNK_KEYWORDS or _suspect(k) or len(key.split()) > 3 or \
                key in {tag_key(x) for x in kws}:
            continue
        kws.append(k.strip())
        if len(kws) >= keywords:
            break
    return PickFacts(it.title, it.display_title, tuple(about), tuple(kws))


def fact_line(rec, facts: PickFacts | None = None, context: ExplainContext | None = None) -> str | None:
    """The pick's facts as a line (what replaces a line that failed); None when it has none beyond its reason."""
    facts = facts or pick_facts(rec)
    tie = shared_line(rec, context) if context is not None else ""
    if facts.about:
        return f"{facts.display}: {facts.about[0]}" + (f" {tie}" if tie else "")
    if facts.keywords:
        return f"{facts.display}: " + ", ".join(facts.keywords[:4]) + "." + (f" {tie}" if tie else "")
    return f"{facts.display}: {tie}" if tie else None


def shared_line(rec, context: ExplainContext | None, limit: int = 3) -> str:
    """What the pick shares with a title the user liked, beyond genres and the matched tags: a fact, not the
    model's ("Shares space marine, alien with Alien."); empty when it shares nothing."""
    if context is None or not context.liked_facts:
        return ""
    skip = {tag_key(g) for g in (*GENRES, *rec.item.genres)} | {tag_key(t) for t in rec.breakdown.matched_tags}
    for title, tags in context.liked_facts:
        if normalise_title(title) == normalise_title(rec.item.title) or _suspect(title):
            continue
        theirs = {tag_key(t) for t in tags}
        shared = []
        for t in rec.item.all_tags:
            k = tag_key(t)
            if k in theirs and k not in skip and not _suspect(t) and k not in shared:
                shared.append(k)
        if shared:
            return f"Shares {', '.join(shared[:limit])} with {title}."
    return ""


# -- "restating the reason" ------------------------------------------------------------------------

#: words that carry no fact of their own: articles, pronouns, auxiliaries, the closed connectives the grammar
#: allows, and words about the request itself
CONNECTIVES = tuple("""a an the and or but with about of in on at to for from by as into over after before
while when where who whom whose which that this these those it its they them their he she his her him is are
was were be been being has have had also both so then there here one two some any all each more most very
fits fit follows like you your asked ask want wanted wants request looking movie movie's film films story tale
just also""".split())
_FILLER = frozenset(CONNECTIVES) | {"s", "t", "re", "ll", "d", "it's", "that's"}


def _stem(word: str) -> str:
    w = word.lower().strip("'’-")
    for suffix in ("'s", "’s"):
        if w.endswith(suffix):
            w = w[: -len(suffix)]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


_FILLER_STEMS = frozenset(_stem(w) for w in _FILLER) | _FILLER


def _words(text: str) -> list[str]:
    """Words, with abbreviations kept whole ("L.A.", "U.S.") so a line never ends inside one."""
    return re.findall(r"(?:[A-Za-z]\.){2,}|[A-Za-z0-9][A-Za-z0-9'’-]*", text)


def content_words(text: str, rec) -> set[str]:
    """The words of a line that could carry a fact: not the pick's title or year, not filler."""
    title = {_stem(w) for w in _words(rec.item.display_title)}
    return {s for s in (_stem(w) for w in _words(text)) if s and s not in title and s not in _FILLER_STEMS}


def restates_reason(text: str, rec) -> bool:
    """True when every content word of ``text`` beyond the title is already in the pick's reason line
    (title, year, genres, matched tags and the reason's words): the line adds nothing to the list."""
    text = _NUMBER.sub("", text, count=1) if _NUMBER.match(text) else text  # a list number is no fact
    known = {_stem(w) for w in _words(reason_line(rec))}
    known |= {_stem(w) for t in rec.breakdown.matched_tags for w in _words(t)}
    known |= {_stem(w) for g in rec.item.genres for w in re.split(r"[-\s]", g)}
    return content_words(text, rec) <= known


# -- the grammar -----------------------------------------------------------------------------------

_NEGATIONS = {"no", "not", "nothing", "never", "without", "non", "none", "nor", "don't", "isn't", "doesn't"}
_CLAIMS = {"popular", "close", "best", "greatest", "acclaimed", "award", "classic", "perfect"}


def _gbnf(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def line_grammar(recs: Sequence, pick: int, facts: PickFacts, context: ExplainContext, max_words: int = 22) -> str:
    """GBNF for one pick's line: its title, then words of its facts, the request words those facts hold, the
    liked titles and the connectives, ending with a full stop. What the review would reject is left out."""
    rec = recs[pick]
    # as the review reads genre words: a whole genre name is a claim unless it is one of the pick's own tags
    own_tags = {tag_key(t) for t in (*rec.item.all_tags, *rec.breakdown.matched_tags)}
    genre_words = {g.lower() for g in GENRES} | {g.lower() for r in recs for g in r.item.genres}
    own_genre_words = {g for g in genre_words if g in own_tags}
    other_titles = {w for r in recs if r is not rec for w in _words(r.item.title) if w[:1].isupper()}
    source = {w for w in _words(facts.text())}
    source |= {w for t in rec.breakdown.matched_tags for w in _words(t)}
    source |= {w for g in rec.item.genres for w in _words(g)}
    allowed: set[str] = set()
    for w in source:
        low = w.lower()
        if low in _NEGATIONS or low in _CLAIMS or (low in genre_words and low not in own_genre_words):
            continue
        if w in other_titles and w not in _words(rec.item.title):
            continue
        if re.fullmatch(r"\d{4}", w):  # years are claims the review checks against the title: leave them out
            continue
        allowed.add(w)
        allowed.add(low)
    allowed |= {w for w in CONNECTIVES if w not in _NEGATIONS}
    if rec.breakdown.behaviour >= POPULAR:
        allowed.add("popular")
    liked = [t for t in context.liked_titles if t and not _suspect(t)]
    liked_names = [re.sub(r"\s*\(\d{4}\)$", "", t) for t in liked]
    words = sorted(allowed, key=lambda w: (w.lower(), w))
    alternatives = " | ".join(_gbnf(w) for w in words)
    if liked_names:
        alternatives += " | " + " | ".join(_gbnf(t) for t in dict.fromkeys(liked_names))
    return (f"root ::= {_gbnf(rec.item.title)} tail\n"
            f"tail ::= (\" \" w \",\"?){{3,{max_words}}} \".\"\n"
            f"w ::= {alternatives}\n")


_DETERMINERS = frozenset("""a an the his her their its this these those two three four five six seven eight nine ten
several many some one young old""".split())
_FUNCTION_WORDS = frozenset("""a an the and or but of to in on at for with by from as into is are was were be been
who whom whose which that this his her their its he she they it when where while after before than then
not no so if over under about""".split())
MIN_STRETCH = 4  # words of the overview a line copies, at least
FRAMES = ("is about", "follows", "has", "features", "is a film about", "is the story of")


def phrase_grammar(recs: Sequence, pick: int, facts: PickFacts, context: ExplainContext) -> str | None:
    """GBNF for one pick's line as copied phrases: its title, a connective from a closed set (:data:`FRAMES`,
    or "is a <its own genre> film about"), one unbroken stretch of its overview's words, then optionally
    ", with" one or two of its keywords, and a full stop. The model chooses where the stretch starts and ends;
    it cannot join words that were not next to each other in the pick's own facts. A genre word the pick
    lacks, a year, "popular" without the behaviour to back it or another pick's title word breaks a stretch."""
    rec = recs[pick]
    # as the review reads genre words: a whole genre name is a claim unless it is one of the pick's own tags
    own_tags = {tag_key(t) for t in (*rec.item.all_tags, *rec.breakdown.matched_tags)}
    genre_words = {g.lower() for g in GENRES} | {g.lower() for r in recs for g in r.item.genres}
    own_genre_words = {g for g in genre_words if g in own_tags}
    other_titles = {w for r in recs if r is not rec for w in _words(r.item.title) if w[:1].isupper()}
    own_title = set(_words(rec.item.title))

    def allowed(word: str) -> bool:
        low = word.lower().strip(",;:")
        if (low in genre_words and low not in own_genre_words) or re.fullmatch(r"\d{4}", low):
            return False
        if low in _CLAIMS and not (low == "popular" and rec.breakdown.behaviour >= POPULAR):
            return False
        return not (word.strip(",;:") in other_titles and word.strip(",;:") not in own_title)

    rules: list[str] = []
    starts: list[str] = []
    for sentence in facts.about:
        hard_cut = sentence.endswith(_MID_CLAUSE)
        words = re.findall(r"\S+", sentence.rstrip(".!?… "))
        segment: list[tuple[str, bool, bool]] = []  # (word, may a stretch start here, may it end here)
        for k, w in enumerate([*words, None]):  # a word that may not be said ends a stretch
            if w is not None and allowed(w) and re.search(r"\w", w):
                bare = w.strip(",;:").lower()
                prev = words[k - 1] if k else ""
                nxt = words[k + 1].lower() if k + 1 < len(words) else ""
                # a stretch starts where a phrase does: a determiner, a number, a name, or after a comma;
                # it ends where one does: at a comma, the sentence's end, or before a function word
                start = bare in _DETERMINERS or bare.isdigit() or prev.endswith((",", ";", ":")) or \
                    (k > 0 and w[:1].isupper())
                end = bare not in _FUNCTION_WORDS and (
                    w.endswith((",", ";", ":")) or (not nxt and not hard_cut) or nxt.strip(",;:") in _FUNCTION_WORDS)
                word = re.sub(r'["“”()]', "", w).rstrip(",;:")
                if k == 0 and bare in _DETERMINERS:  # "is about a young lion", not "about A young lion"
                    word = word.lower()
                segment.append((word, start, end))
                continue
            while segment and not segment[-1][2]:  # the stretch's last word must be able to end it
                segment.pop()
            base = len(rules)
            for i, (word, start, end) in enumerate(segment):
                name = f"s{base + i}"
                if i == len(segment) - 1:
                    rules.append(f"{name} ::= {_gbnf(word)}")
                else:
                    follow = f'" " s{base + i + 1}'
                    rules.append(f"{name} ::= {_gbnf(word)} ({follow})?" if end else f"{name} ::= {_gbnf(word)} {follow}")
            for i in range(len(segment) - MIN_STRETCH + 1):
                if not segment[i][1]:
                    continue
                # a stretch of fewer than MIN_STRETCH words says nothing ("is about the scene", "their own
                # devices"): the first words of a start are written out again as one required chain
                head = f"s{base + i + MIN_STRETCH - 1}"
                for j in range(i + MIN_STRETCH - 2, i - 1, -1):
                    rules.append(f"s{len(rules)} ::= {_gbnf(segment[j][0])} \" \" {head}")
                    head = f"s{len(rules) - 1}"
                starts.append(head)
            segment = []
    keywords = list(dict.fromkeys(k for k in facts.keywords if allowed(k) and all(allowed(w) for w in k.split())))
    frames = list(FRAMES) + [f"is {'an' if g[:1].lower() in 'aeiou' else 'a'} "
                             f"{'children’s' if g.lower() == 'children' else g.lower()} film about"
                             for g in rec.item.genres[:3] if allowed(g)]
    body = " | ".join(starts) if starts else None
    head = f"root ::= {_gbnf(rec.item.title)} \" \" frame \" \" "
    kw_rules = []
    if keywords:  # one keyword, or two different ones
        pairs = []
        for a in keywords:
            rest = [b for b in keywords if b != a]
            pairs.append(_gbnf(a) + (" (\", \" (" + " | ".join(_gbnf(b) for b in rest) + "))?" if rest else ""))
        kw_rules.append("kws ::= " + " | ".join(f"({p})" for p in pairs))
    if not body and not keywords:
        return None  # nothing long enough to copy: the pick keeps its fact line
    if body and keywords:
        root = head + 'span (", with " kws)? "."'
    elif body:
        root = head + 'span "."'
    else:
        root = head + 'kws "."'
    lines = [root, "frame ::= " + " | ".join(_gbnf(f) for f in frames)]
    if body:
        lines.append("span ::= " + body)
    return "\n".join(lines + kw_rules + rules) + "\n"


# -- the review ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """A false statement in one line of an answer."""

    kind: str  # "wrong year", "wrong genre", "wrong tag", "unsupported claim", "another pick's title",
    #            "no such pick", "off-list title", "empty line", "cut off", "restates the reason"
    text: str
    pick: int | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Review:
    text: str  # the lines that passed, joined
    repairs: tuple[Problem, ...] = ()  # one per line that did not
    fatal: str | None = None  # why nothing of the text can stand


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
        self.any_own = set().union(*self.own) if self.own else set()
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
                return Problem("wrong year", f"wrong year for {title.strip()!r}: {year}, not {known}", pick)
        if pick is None:
            return None
        rec, own = self.recs[pick], self.own[pick]
        name = rec.item.display_title
        rest = unit
        for t in self.titles[pick]:  # "Alien 3" names "Alien" only if "Alien" stands apart from it
            rest = t.sub(" ", rest)
        for p in range(len(self.recs)):
            if p != pick and self.names(p, rest):
                other = self.recs[p].item.title
                return Problem("another pick's title", f"line {pick + 1} is about {other!r}, but pick {pick + 1} is {name}",
                               pick)
        claims = unit
        for titles in self.titles:  # a title's own words are not claims ("Star Wars", "Musical")
            for t in titles:
                claims = t.sub(" ", claims)
        for m in self.genres.finditer(claims):
            if tag_key(m.group(1)) not in own and not _NEGATED.search(claims[: m.start()]):
                return Problem("wrong genre", f"{m.group(1)!r} is not a genre of {name}", pick)
        for m in _MATCHES.finditer(claims):
            for term in map(tag_key, re.split(r",|\band\b|&", m.group(1))):
                # another pick's tag: the facts of two lines swapped (a free phrase is not checked)
                if term in self.any_own and term not in own:
                    return Problem("wrong tag", f"{name} does not match {term!r}", pick)
        b = rec.breakdown
        if re.search(r"close to what you (?:asked|want)", claims, re.I) and b.similarity < CLOSE:
            return Problem("unsupported claim", f"{name} is not close to the request (S {b.similarity:.2f})", pick)
        if re.search(r"\bpopular\b", claims, re.I) and b.behaviour < POPULAR:
            return Problem("unsupported claim", f"{name} is not popular (B {b.behaviour:.2f})", pick)
        return None


# -- the explainer ---------------------------------------------------------------------------------

BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
STRATEGIES = ("phrases", "words", "free", "facts")


def _capable(backend) -> bool:
    """A model that can say more than the bundled 135M one: any hosted model, any other GGUF."""
    return backend is not None and not (backend.info.name == "local" and backend.info.model == BUNDLED_MODEL)


class Explainer:
    """Explains picks one line each (see the module docstring). Holds no per-call state.

    Options: ``strategy`` ("grammar": constrained per-pick lines where the backend supports grammars, else the
    same prompt unconstrained; "free": per-pick lines, never constrained; "facts": no model), ``explain_top``
    (how many picks get a line; default 3 for the bundled model, 5 for a capable one), ``max_tokens`` (per
    line), ``sentences`` and ``keywords`` (facts per pick), ``temperature`` (0: greedy, reproducible, and
    llama.cpp checks only the greedy token against the grammar: :mod:`chatrec.llm.grammar_first`).
    """

    def __init__(self, backend: ChatBackend | None, titles: TitleIndex | None = None, **options):
        self.backend = backend
        self.titles = titles
        capable = _capable(backend)
        self.capable = capable
        self.strategy = options.pop("strategy", "phrases")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown explanation strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        self.explain_top = int(options.pop("explain_top", 5 if capable else 3))
        self.max_tokens = int(options.pop("max_tokens", 90 if capable else 56))
        self.max_words = int(options.pop("max_words", 40 if capable else 18))
        self.sentences = int(options.pop("sentences", 3 if capable else 1))
        self.keywords = int(options.pop("keywords", 8 if capable else 5))
        self.fact_words = int(options.pop("fact_words", 80 if capable else 25))
        self.temperature = float(options.pop("temperature", 0.0))
        self.example = bool(options.pop("example", True))  # one fixed worked example (a cached prompt prefix)
        if options:
            raise TypeError(f"unknown Explainer options: {', '.join(sorted(options))}")

    # -- prompts ---------------------------------------------------------------------------------
    def system_prompt(self) -> str:
        return load_prompt("system") + "\n\n" + load_prompt("explanation")

    def messages(self, facts: PickFacts, context: ExplainContext) -> list[tuple[str, str]]:
        """One pick's prompt. The request comes first, so the calls of one turn share their prefix (llama.cpp
        then reads only the pick's facts for the second and third line)."""
        request = context.request or "(no request: picks from what the user liked)"
        if context.liked_titles:
            request += "\nLiked: " + ", ".join(context.liked_titles)
        user = wrap_data("request", request) + "\n" + wrap_data("movie", facts.block())
        example_user = wrap_data("request", "a funny heist movie") + "\n" + wrap_data(
            "movie", "Ocean's Eleven (2001)\nAbout: Danny Ocean and his crew plan to rob three Las Vegas casinos "
                     "at the same time.\nKeywords: casino, las vegas, con artist")
        example = "Ocean's Eleven follows Danny Ocean and his crew as they rob three Las Vegas casinos at the same time."
        if not self.example:
            return [("system", self.system_prompt()), ("user", user)]
        return [("system", self.system_prompt()), ("user", example_user), ("assistant", example), ("user", user)]

    # -- the call --------------------------------------------------------------------------------
    def explain(self, recs: Sequence, context: ExplainContext | str | None = None) -> Explanation:
        if context is None:
            context = ExplainContext()
        elif isinstance(context, str):
            context = ExplainContext(request=context)
        t0 = time.perf_counter()
        outcome = Outcome(strategy=self._strategy_name())
        return Explanation(self._lines(list(recs), context, outcome, t0), outcome)

    def _strategy_name(self) -> str:
        if self.backend is None or self.strategy == "facts":
            return "facts"
        if self.strategy in ("phrases", "words") and getattr(self.backend, "supports_grammar", False):
            return self.strategy
        return "free"

    def _lines(self, recs: list, context: ExplainContext, outcome: Outcome, t0: float) -> Iterator[Line]:
        strategy = outcome.strategy
        problems: list[Problem] = []
        try:
            if strategy != "facts" and self.backend is None:
                strategy = "facts"
            if self.backend is None:
                outcome.fallback_reason = "no LLM configured"
            failed = False
            n_lines = 0
            for p in range(len(recs)):
                if n_lines >= self.explain_top:
                    break
                facts = pick_facts(recs[p], self.sentences, self.keywords, self.fact_words)
                if not facts.extra and not shared_line(recs[p], context):
                    continue  # nothing to say beyond its reason: the next pick that has something gets the line
                line: Line | None = None
                if strategy != "facts" and not failed and facts.about:
                    try:
                        text = self._ask(recs, p, facts, context, strategy, outcome)
                    except LLMError as exc:
                        log.warning("explanation failed, using the fact lines: %s", exc)
                        outcome.fallback_reason = f"LLM failed: {exc}"
                        failed = True
                        text = None
                    if text is not None:
                        outcome.lines_written += 1
                        problem = self.review_line(text, recs, p, context)
                        if problem is None:
                            tie = shared_line(recs[p], context)
                            if tie and self.review_line(f"{text} {tie}", recs, p, context) is None:
                                text = f"{text} {tie}"
                            line = Line(p, text, "model")
                            outcome.lines_kept += 1
                            # judged on the model's own words (the shared-tags sentence is not the model's)
                            outcome.lines_restating_reason += restates_reason(text.removesuffix(tie).strip()
                                                                              if tie else text, recs[p])
                        else:
                            problems.append(problem)
                            log.info("explanation line %d withheld: %s (%r)", p + 1, problem, text)
                if line is None:
                    shown = fact_line(recs[p], facts, context)
                    if shown is not None and self.review_line(shown, recs, p, context, fact=True) is None:
                        line = Line(p, shown, "facts")
                if line is None:
                    continue
                now = time.perf_counter() - t0
                if outcome.first_visible_s is None:
                    outcome.first_visible_s = now
                if line.source == "model" and outcome.first_model_line_s is None:
                    outcome.first_model_line_s = now
                outcome.lines_shown += 1
                n_lines += 1
                yield line
            if outcome.lines_written and not outcome.lines_kept and outcome.fallback_reason is None:
                outcome.fallback_reason = f"no line passed the review: {problems[0]}"
            outcome.withdrawn = strategy != "facts" and self.backend is not None and outcome.lines_kept == 0 \
                and bool(outcome.lines_written or outcome.fallback_reason)
        finally:
            outcome.repairs = tuple(problems)
            outcome.seconds = time.perf_counter() - t0

    def _ask(self, recs, p: int, facts: PickFacts, context: ExplainContext, strategy: str,
             outcome: Outcome) -> str | None:
        """The model's line about pick ``p`` (its first line, the title put in front when it left it out), or
        None when its facts hold nothing the phrase grammar may copy."""
        grammar = (line_grammar(recs, p, facts, context, self.max_words) if strategy == "words" else
                   phrase_grammar(recs, p, facts, context) if strategy == "phrases" else None)
        if grammar is None and strategy == "phrases":
            return None
        messages = self.messages(facts, context)
        outcome.model_calls += 1
        count = getattr(self.backend, "count_tokens", None)
        if count is not None:
            outcome.prompt_tokens += sum(count(c) for _, c in messages)
        pieces: list[str] = []
        kwargs = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if grammar is not None:
            kwargs["grammar"] = grammar
        stream = self.backend.stream(messages, **kwargs)
        try:
            for piece in stream:
                pieces.append(piece)
                joined = "".join(pieces).lstrip()
                if "\n" in joined:  # one line per pick: the rest is not shown, so it is not generated
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        raw = "".join(pieces)
        if count is not None:
            outcome.completion_tokens += count(raw)
        return self._tidy(raw, recs[p])

    @staticmethod
    def _tidy(raw: str, rec) -> str:
        text = raw.strip().split("\n")[0].strip()
        text = re.sub(r"^(?:\d{1,2}[.)]\s*|[-*•]\s*)", "", text).strip()
        if text.endswith(CUT_MARK.strip()):  # cut by the token budget: keep its whole sentences
            body = text[: -len(CUT_MARK.strip())].rstrip()
            end = max(body.rfind(". "), body.rfind("! "), body.rfind("? "))
            text = body[: end + 1] if end > 0 else body + " …"
        if text and rec.item.title.lower() not in text.lower():
            text = f"{rec.item.display_title}: {text}"
        return text

    # -- the review ------------------------------------------------------------------------------
    def review_line(self, text: str, recs: Sequence, pick: int, context: ExplainContext | None = None,
                    fact: bool = False) -> Problem | None:
        """Why ``text``, a line about pick ``pick``, must not be shown (None: it may)."""
        if len(re.findall(r"\w+", text)) < 3:
            return Problem("empty line", "the line is empty", pick)
        if text.endswith("…") and not fact:
            return Problem("cut off", "the line was cut off by the token budget", pick)
        off = self._off_list(text, recs, context, pick)
        if off:
            return Problem("off-list title", off, pick)
        return _Facts(recs).problem(text, pick)

    def check(self, text: str, recs: Sequence, context: ExplainContext | None = None) -> str | None:
        """Why ``text`` (a whole explanation) is not acceptable as it stands, or None."""
        review = self.review(text, recs, context)
        return review.fatal or (str(review.repairs[0]) if review.repairs else None)

    def review(self, text: str, recs: Sequence, context: ExplainContext | None = None) -> Review:
        """``text`` checked line by line against the picks' facts: the lines that pass, and a problem per line
        that does not. A line is about the pick it is numbered as, or the one listed title it names."""
        recs = list(recs)
        if not text.strip() or len(re.findall(r"\w+", text)) < 3:
            return Review("", fatal="empty answer")
        facts = _Facts(recs)
        kept, repairs = [], []
        for unit in _units(text):
            pick, problem = facts.attribute(unit)
            if problem is None:
                off = self._off_list(unit, recs, context, pick)
                problem = Problem("off-list title", off, pick) if off else facts.problem(unit, pick)
            if problem is None:
                kept.append(unit)
            else:
                repairs.append(problem)
        if not kept:
            return Review("", tuple(repairs), fatal=f"no line was right: {repairs[0]}")
        return Review("\n".join(kept), tuple(repairs))

    def _off_list(self, text: str, recs: Sequence, context: ExplainContext | None = None,
                  pick: int | None = None) -> str | None:
        """An item named that is not on the list (nor liked by the user, nor a word of this pick's own facts)."""
        allowed = {normalise_title(r.item.title) for r in recs} | {
            normalise_title(a) for r in recs for a in r.item.aka
        }
        liked = {normalise_title(re.sub(r"\s*\(\d{4}\)$", "", t)) for t in (context.liked_titles if context else ())}
        allowed |= liked
        allowed_ids = {r.item.id for r in recs}
        # Genre and tag words of the picks are facts, not titles ("Romance" is also a 1999 film).
        facts = {normalise_title(t) for r in recs for t in (*r.item.genres, *r.breakdown.matched_tags)}
        own = [normalise_title(pick_facts(r, 3, 20, 200).text()) for r in
               (recs if pick is None else [recs[pick]])] if recs else []
        if self.titles is not None:
            for m in self.titles.find(text):
                mention = normalise_title(re.sub(r"\(\d{4}\)", "", m.text))
                if m.item_id in allowed_ids or mention in allowed or mention in facts:
                    continue
                # a name from the pick's own overview or keywords ("Riddick" in Pitch Black's) is its fact
                if mention and any(re.search(r"(?<!\w)" + re.escape(mention) + r"(?!\w)", o) for o in own):
                    continue
                return f"names an item not in the list: {m.text!r}"
        # "Title (Year)" patterns must be on the list even when the catalogue does not know them
        for title, _ in _TITLE_YEAR.findall(text):
            norm = normalise_title(title)
            if norm and not any(norm.endswith(a) or a.endswith(norm) for a in allowed if a):
                return f"names an item not in the list: {title!r}"
        return None
