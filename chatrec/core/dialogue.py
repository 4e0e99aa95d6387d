"""The decisions of one chat turn, from what the message says and what the session knows. Pure.

A message is one of three things:

* **unclear**: nothing to go on ("hi", "what should I watch?"); with an empty profile the engine asks one
  short question instead of guessing;
* a **refinement** of the request in force: it only narrows or avoids ("no horror please", "nothing
  before 1980", "not with Tom Cruise", "I hated Prometheus"); the request's text stays (embedding "no
  horror" would ask for what the user just turned down) and its hard wishes are added to the ones in force;
* a **new request**: it asks for something (a liked tag or title, someone, a genre, a mood); its text
  becomes the request and its hard wishes replace the old ones ("a new request replaces the old hard
  constraints").

A mood turn ("something lighter now") likes comedy and, for this request, rules out the dark genres the
conversation was about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chatrec.core.constraints import Constraints, Genres
from chatrec.core.preferences import Preferences

#: genres a lighter mood leaves behind, and the one it turns to
DARK_GENRES = ("Horror", "Thriller", "Crime", "War", "Film-Noir", "Mystery", "Drama")
LIGHT_GENRES = ("Comedy",)


@dataclass(frozen=True)
class TurnPlan:
    kind: str  # "unclear" | "refine" | "request"
    query: str | None  # the request text to store (None: keep the one in force)
    liked_tags: tuple[str, ...]
    disliked_tags: tuple[str, ...]
    constraints: Constraints

    @property
    def new_request(self) -> bool:
        return self.kind == "request"


def plan_turn(prefs: Preferences | None, focus: Mapping[str, float], has_request: bool) -> TurnPlan:
    """What a message does to the conversation. ``focus``: the liked tags in force (tag → weight);
    ``has_request``: whether a request is in force (a refinement needs one to refine)."""
    if prefs is None:
        return TurnPlan("unclear", None, (), (), Constraints())
    liked, disliked = list(prefs.liked_tags), list(prefs.disliked_tags)
    constraints = prefs.constraints
    if prefs.mood:
        liked, disliked, constraints = _mood(prefs.mood, liked, disliked, constraints, focus)
    mentioned = prefs.mentioned()
    asks = bool(liked) or any(s > 0 for s in mentioned.values()) or any(
        not c.negated and c.kind in ("people", "genres") for c in constraints)
    if not asks and not disliked and not mentioned and not constraints and only_filler(prefs.query):
        return TurnPlan("unclear", None, (), (), Constraints())
    if not asks and only_filler(prefs.query) and has_request:
        return TurnPlan("refine", None, tuple(liked), tuple(disliked), constraints)
    return TurnPlan("request", prefs.query, tuple(liked), tuple(disliked), constraints)


def _mood(mood: str, liked: list[str], disliked: list[str], constraints: Constraints,
          focus: Mapping[str, float]) -> tuple[list[str], list[str], Constraints]:
    """"Something lighter": like comedy, and rule out the dark genres in focus (all of them when none is);
    "something darker": the reverse."""
    if mood == "lighter":
        turn_to, leave = LIGHT_GENRES, DARK_GENRES
    else:
        turn_to, leave = ("Thriller", "Drama"), LIGHT_GENRES + ("Children", "Animation", "Musical")
    in_focus = [g for g in leave if focus.get(g.lower(), 0.0) > 0]
    ruled_out = tuple(in_focus or leave)
    liked = list(dict.fromkeys([*liked, *(g.lower() for g in turn_to)]))
    liked = [t for t in liked if t.title() not in ruled_out and t not in {g.lower() for g in ruled_out}]
    constraints = constraints.refined(Constraints((Genres(genres=ruled_out, negated=True),)))
    return liked, disliked, constraints


def only_filler(text: str) -> bool:
    """``text`` is only greetings and filler words: it asks for nothing in particular."""
    words = [w for w in "".join(ch.lower() if ch.isalnum() else " " for ch in text).split() if len(w) > 1]
    return all(w in FILLER for w in words)


def is_unclear(liked_tags: Iterable[str], disliked_tags: Iterable[str], items: Iterable[str], query: str) -> bool:
    """Nothing to go on: no tags, no items, and the text is only greetings and filler words."""
    if any(True for _ in liked_tags) or any(True for _ in disliked_tags) or any(True for _ in items):
        return False
    return only_filler(query)


FILLER = frozenset(
    """hi hello hey hiya yo there thanks thank you ok okay please pls so well um uh hmm good morning evening
    afternoon can could would you me my i i'm im we us some something anything any recommend recommendation
    recommendations suggest suggestion suggestions movie movies film films show shows watch watching see
    want wanna need should like love get give tell what which whatever idea ideas for to a an the of and or in on
    it is be do does bored tonight today now new good nice great cool stuff thing things one ones help
    made from with by""".split()
)
