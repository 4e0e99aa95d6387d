"""What a ranking call returns: the picks with their breakdowns and how each meets the hard wishes."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatrec.core.constraints import Constraints, Fit
from chatrec.core.items import Item
from chatrec.core.scoring import Breakdown


@dataclass(frozen=True)
class Recommendation:
    item: Item
    breakdown: Breakdown
    fit: Fit = Fit()

    @property
    def score(self) -> float:
        return self.breakdown.score

    def to_json(self) -> dict:
        it = self.item
        out = {
            "id": it.id,
            "title": it.title,
            "year": it.year,
            "score": round(self.score, 6),
            "tags": list(it.all_tags),
            "breakdown": self.breakdown.as_dict(),
            "matched_tags": list(self.breakdown.matched_tags),
            "disliked_tags": list(self.breakdown.disliked_tags),
            "genres": list(it.genres),
            "directors": list(it.directors),
            "cast": list(it.cast),
            "runtime": it.runtime,
        }
        if self.fit.met:
            out["constraints"] = {label: ok for label, ok in self.fit.met}
            out["closest"] = self.fit.closest
        return out


@dataclass
class Result:
    items: list[Recommendation]
    cold_start: bool
    warnings: list[str] = field(default_factory=list)
    unknown_tags: dict[str, list[str]] = field(default_factory=dict)
    constraints: Constraints = field(default_factory=Constraints)
    meeting: int | None = None  # how many items meet every constraint (None: no constraints)

    @property
    def relaxed(self) -> bool:
        """Some picks are only the closest ones: too few items meet every constraint."""
        return any(r.fit.closest for r in self.items)

    def note(self) -> str | None:
        """What the user must be told when the constraints could not all be met (never pad silently)."""
        if not self.relaxed:
            return None
        wanted = self.constraints.describe()
        n = self.meeting or 0
        if n == 0:
            return f"Nothing in the catalogue meets all of {wanted}; these are the closest ones (marked ≈)."
        items = "item meets" if n == 1 else "items meet"
        return (f"Only {n} {items} all of {wanted}; the rest of the list is the closest ones (marked ≈).")
