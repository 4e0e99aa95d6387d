"""Every line a phrase grammar (:func:`chatrec.llm.explain.phrase_grammar`) allows, written out.

The grammar is small and regular: a title, one connective, one stretch of a fact sentence (a chain of
``sN`` rules), optionally ", with" one or two keywords. Writing out every stretch (each start to each place
it may end) with every connective and keyword choice gives the whole language, so the review can be run on
each possible line without the model: "grounded by construction" measured, not assumed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

_RULE = re.compile(r'^(s\d+) ::= ("(?:[^"\\]|\\.)*")(?: (\(" " (s\d+)\)\?|" " (s\d+)))?$')


def _alternatives(body: str) -> list[str]:
    return [json.loads(m) for m in re.findall(r'"(?:[^"\\]|\\.)*"', body)]


def lines(grammar: str, keyword_pairs: bool = True) -> Iterator[str]:
    """All lines of a phrase grammar (stretch × connective × keyword choice)."""
    rules = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())
    root = rules["root"]
    title = json.loads(re.match(r'("(?:[^"\\]|\\.)*")', root).group(1))
    frames = _alternatives(rules["frame"])
    chain: dict[str, tuple[str, str | None, bool]] = {}  # name -> (word, next, may end here)
    for line in grammar.strip().splitlines():
        m = _RULE.match(line)
        if m:
            name, word, _, optional_next, required_next = m.groups()
            chain[name] = (json.loads(word), optional_next or required_next, required_next is None)
    stretches: list[str] = []
    for start in (rules.get("span", "").split(" | ") if "span" in rules else []):
        words, name = [], start.strip()
        while name:
            word, nxt, ends = chain[name]
            words.append(word)
            if ends:
                stretches.append(" ".join(words))
            name = nxt
    keywords = _alternatives(rules["kws"].split(")")[0]) if "kws" in rules else []
    if "kws" in rules:
        keywords = list(dict.fromkeys(_alternatives(rules["kws"])))
    tails = [""]
    if keywords and "span" in rules:
        tails += [", with " + k for k in keywords]
        if keyword_pairs:
            tails += [f", with {a}, {b}" for a, b in itertools.permutations(keywords, 2)]
    for frame in frames:
        if "span" in rules:
            for stretch, tail in itertools.product(stretches, tails):
                yield f"{title} {frame} {stretch}{tail}."
        else:
            for k in keywords:
                yield f"{title} {frame} {k}."
            if keyword_pairs:
                for a, b in itertools.permutations(keywords, 2):
                    yield f"{title} {frame} {a}, {b}."
