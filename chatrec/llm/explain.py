"""Explanations of the picks: streamed from the LLM, grounded in each pick's breakdown, checked.

The model sees the picks as delimited data (title, year, genres, matched tags and the S/B/C
numbers) and is asked for one line per pick. After generation the text is checked: it must be
non-empty and name no catalogue title outside the list. Anything else, or any failure, falls back
to a template built from the breakdown, so every pick always gets a reason.

The stream yields :class:`Chunk` events: ``token`` pieces as they arrive and, when the check
fails after streaming, one ``replace`` event carrying the whole fallback text.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chatrec.llm.backends import ChatBackend, LLMError
from chatrec.llm.prompts import load_prompt, wrap_data
from chatrec.titles import TitleIndex, normalise_title

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    kind: str  # "token" | "replace"
    text: str


def reason(rec, liked_items: Sequence[str] = ()) -> str:
    """A short, checkable reason from one recommendation's breakdown."""
    b = rec.breakdown
    parts = []
    if b.matched_tags:
        parts.append("matches " + ", ".join(b.matched_tags[:3]))
    if b.similarity >= 0.6:
        parts.append("close to what you asked for")
    if b.behaviour >= 0.6:
        parts.append("popular and well rated")
    elif b.behaviour >= 0.35:
        parts.append("well liked by others")
    if b.penalty > 0:
        parts.append("but has " + ", ".join(b.disliked_tags) + " you said you dislike")
    if not parts:
        genres = ", ".join(rec.item.genres[:2]) or "a different direction"
        parts.append(f"something different: {genres}")
    return "; ".join(parts)


def template(recs: Sequence) -> str:
    lines = []
    for n, rec in enumerate(recs, 1):
        b = rec.breakdown
        lines.append(
            f"{n}. {rec.item.display_title}: {reason(rec)} "
            f"(score {b.score:.2f} = 0.5·S {b.similarity:.2f} + 0.3·B {b.behaviour:.2f} + 0.2·C {b.content:.2f}"
            + (f" − {b.penalty:.2f}" if b.penalty else "") + ")."
        )
    return "\n".join(lines)


def picks_block(recs: Sequence) -> str:
    """The facts the model may use, one compact line per pick: genres and the breakdown in words.

    Compact on purpose: the bundled model reads prompts at ~150 tokens/s on 2 cores, so every fact
    costs time to the first token (README "Speed").
    """
    lines = []
    for n, rec in enumerate(recs, 1):
        it = rec.item
        genres = ", ".join(it.genres[:3]) or "n/a"
        lines.append(f"{n}. {it.display_title} — {genres}; {reason(rec)}")
    return "\n".join(lines)


_MARKER_LINE = re.compile(r"^\s*(<<<[A-Z ]*|[A-Z ]*>>>)\s*$")
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


class Explainer:
    # 150: three picks' lines took 51-104 tokens in 20 bench requests; at 90, 7 of 20 were cut mid-sentence
    def __init__(self, backend: ChatBackend | None, titles: TitleIndex | None = None, max_tokens: int = 150,
                 explain_top: int = 3):
        self.backend = backend
        self.titles = titles
        self.max_tokens = max_tokens
        self.explain_top = explain_top  # the model explains the first few; every pick has its template reason
        self.last_first_token_s: float | None = None
        self.last_fallback_reason: str | None = None

    def messages(self, recs: Sequence, request: str) -> list[tuple[str, str]]:
        system = load_prompt("system") + "\n\n" + load_prompt("explanation")
        user = wrap_data("request", request) + "\n" + wrap_data("picks", picks_block(recs[: self.explain_top]))
        return [("system", system), ("user", user)]

    def stream(self, recs: Sequence, request: str = "") -> Iterator[Chunk]:
        """Tokens as they come; a final ``replace`` with the template if the answer fails its check."""
        self.last_first_token_s = None
        self.last_fallback_reason = None
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
        problem = self.check("".join(pieces), recs)
        if problem:
            log.info("explanation rejected (%s); using the template", problem)
            self.last_fallback_reason = problem
            yield Chunk("replace", template(recs))

    def explain(self, recs: Sequence, request: str = "") -> str:
        text = ""
        for chunk in self.stream(recs, request):
            text = chunk.text if chunk.kind == "replace" else text + chunk.text
        return text

    def check(self, text: str, recs: Sequence) -> str | None:
        """Why ``text`` is not acceptable, or None. Off-list titles and empty answers fail."""
        if not text.strip() or len(re.findall(r"\w+", text)) < 3:
            return "empty answer"
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
        years = {normalise_title(t): r.item.year for r in recs for t in (r.item.title, *r.item.aka)}
        for title, year in re.findall(r"([A-Z][\w'’:&\- ]{1,60}?)\s*\((\d{4})\)", text):
            norm = normalise_title(title)
            if norm and not any(norm.endswith(a) or a.endswith(norm) for a in allowed if a):
                return f"names an item not in the list: {title!r}"
            known = years.get(norm) if norm in years else next(
                (y for a, y in years.items() if a and (norm.endswith(a) or a.endswith(norm))), None)
            if known and int(year) != known:  # a listed title with a made-up year is a false statement
                return f"wrong year for {title.strip()!r}: {year}, not {known}"
        return None
