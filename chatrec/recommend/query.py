"""What one ranking call is asked: the user side, built by the engine from a profile (or by an evaluation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chatrec.core.constraints import Constraints
from chatrec.core.profile import Decay

#: how many of the most recent conversation items seed the collaborative part
CONTEXT_ITEMS = 10
#: liked tags at or above this weight are the focus, embedded with the request: said in this message, or
#: in the one before if this one moved nothing (profile.Decay: 0.7 after one plain message, 0.35 after a shift)
FOCUS = Decay().focus


@dataclass
class Query:
    text: str = ""
    liked_tags: Mapping[str, float] = field(default_factory=dict)
    disliked_tags: Mapping[str, float] = field(default_factory=dict)
    liked_items: Mapping[str, float] = field(default_factory=dict)
    user_events: Mapping[str, float] = field(default_factory=dict)
    exclude_ids: frozenset[str] = frozenset()
    #: items the conversation has been about without a like (named by either side, picks shown on an
    #: earlier turn), id -> seed weight: they steer the collaborative part of B, weaker than a like
    context_items: Mapping[str, float] = field(default_factory=dict)
    #: hard wishes: every pick must meet them (or is shown as one of the closest, marked)
    constraints: Constraints = field(default_factory=Constraints)

    @classmethod
    def from_preferences(cls, prefs, text: str, like_tags=None, dislike_tags=None) -> "Query":
        """One message's preferences merged with explicit tag choices (explicit choices win)."""
        dislike_tags = dict(dislike_tags or {})
        liked = {t: 1.0 for t in prefs.liked_tags if t not in dislike_tags}
        liked.update(like_tags or {})
        disliked = {t: 1.0 for t in prefs.disliked_tags if t not in liked}
        disliked.update(dislike_tags)
        for t in dislike_tags:
            liked.pop(t, None)
        mentioned = prefs.mentioned()  # as in chat: a title named as not seen may be recommended
        return cls(
            text=prefs.query if prefs.query.strip() or prefs.constraints else text,
            liked_tags=liked,
            disliked_tags=disliked,
            liked_items={i: s for i, s in mentioned.items() if s > 0},
            exclude_ids=frozenset(mentioned),
            constraints=prefs.constraints,
        )

    @property
    def is_cold(self) -> bool:
        return not (self.text.strip() or self.liked_tags or self.liked_items or self.constraints)


def context_seeds(items: Iterable[str], profile, weight: float) -> dict[str, float]:
    """Seed weights for the items a conversation has been about (oldest first, repeats allowed): the
    ``CONTEXT_ITEMS`` most recently named that the user has neither liked (a like seeds at its own
    strength) nor disliked. An item named again counts from its latest mention."""
    if weight <= 0:
        return {}
    skip = set(profile.liked_items) | profile.disliked_items
    latest_first = [i for i in dict.fromkeys(reversed(list(items))) if i not in skip][:CONTEXT_ITEMS]
    return {i: weight for i in reversed(latest_first)}
