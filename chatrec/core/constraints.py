"""Hard wishes: what every pick must meet ("with Tom Hanks", "the 90s", "under 90 minutes", "not a comedy").

Soft wishes (liked tags, the request's words, liked titles) move S, B and C; hard ones decide which items
may be candidates at all. Each :class:`Constraint` knows three things, and only here:

* its **label**, what the user sees and can take back: "with Tom Hanks", "1990–1999", "not comedy";
* its **mask** over a catalogue's columns (:class:`Columns`): which rows meet it, vectorised;
* its **conditions** for a vector index (:class:`Condition`), when the index stores the field as
  metadata, so retrieval can filter inside the index (Chroma ``where``) instead of after it.

A new constraint type is one class here (label, mask, conditions), one reading rule in
:mod:`chatrec.reading.wishes` and, if it needs a new column, one field in :class:`Columns`.
Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: how a person takes part in an item: "director" (makers: directors, authors, artists, brands),
#: "cast" (performers), "any" (either: the reading could not tell)
ROLES = ("director", "cast", "any")
#: "highly rated" needs a Bayesian-shrunk mean rating in the catalogue's top third and this many ratings;
#: a "hidden gem" is that, and in the least-rated half of the rated items
QUALITY_MIN_RATINGS = 10


class Columns(Protocol):
    """The catalogue columns the masks read (``chatrec.catalogue.table.Catalogue`` has them)."""

    n: int
    years: np.ndarray  # float, NaN where unknown
    runtimes: np.ndarray  # float minutes, NaN where unknown
    quality: np.ndarray  # the shrunk mean rating mapped to [0, 1], NaN where unknown
    n_ratings: np.ndarray

    def rows_with_genre(self, genre: str) -> np.ndarray: ...  # sorted row indices

    def rows_with_person(self, name: str, role: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Condition:
    """One metadata test a vector index can apply: ``field op value``.

    ops: ``ge``/``le`` (a number), ``in_any`` (a list field holds one of ``value``), ``in_none`` (holds
    none of them)."""

    field: str
    op: str
    value: object


def _mask_from_rows(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


@dataclass(frozen=True)
class Constraint:
    """Base: subclasses set ``kind`` and implement ``label``, ``mask`` and (optionally) ``conditions``."""

    negated: bool = False

    kind = "constraint"

    @property
    def label(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def mask(self, cols: Columns) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def conditions(self) -> list[Condition] | None:
        """The index-side form of this constraint, or None when an index cannot apply it exactly."""
        return None

    def to_json(self) -> dict:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        return {"kind": self.kind, **data}


@dataclass(frozen=True)
class People(Constraint):
    """Any of ``names`` in ``role`` ("the Coen brothers": both directors); negated: none of them."""

    names: tuple[str, ...] = ()
    role: str = "any"

    kind = "people"

    @property
    def label(self) -> str:
        who = " or ".join(self.names)
        if self.role == "director":
            return f"not by {who}" if self.negated else f"by {who}"
        return f"not with {who}" if self.negated else f"with {who}"

    def mask(self, cols: Columns) -> np.ndarray:
        rows = [cols.rows_with_person(name, self.role) for name in self.names]
        hit = _mask_from_rows(cols.n, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64))
        return ~hit if self.negated else hit

    def conditions(self) -> list[Condition]:
        fields = {"director": ("directors",), "cast": ("cast",), "any": ("directors", "cast")}[self.role]
        if self.negated:
            return [Condition(f, "in_none", list(self.names)) for f in fields]
        if len(fields) > 1:
            return None  # "either field" is an OR across fields: the catalogue mask does it
        return [Condition(fields[0], "in_any", list(self.names))]


@dataclass(frozen=True)
class Years(Constraint):
    """Released in ``lo``..``hi`` (inclusive; None: open); negated: outside that span."""

    lo: int | None = None
    hi: int | None = None

    kind = "years"

    @property
    def label(self) -> str:
        if self.lo is not None and self.hi is not None:
            span = str(self.lo) if self.lo == self.hi else f"{self.lo}–{self.hi}"
            return f"not {span}" if self.negated else span
        if self.lo is not None:
            return f"before {self.lo}" if self.negated else f"{self.lo} or later"
        if self.hi is not None:
            return f"after {self.hi}" if self.negated else f"{self.hi} or earlier"
        return "any year"

    def mask(self, cols: Columns) -> np.ndarray:
        years = cols.years
        inside = ~np.isnan(years)
        if self.lo is not None:
            inside &= years >= self.lo
        if self.hi is not None:
            inside &= years <= self.hi
        return (~inside & ~np.isnan(years)) if self.negated else inside

    def conditions(self) -> list[Condition] | None:
        if self.negated:
            if self.lo is not None and self.hi is not None:
                return None  # outside a span is an OR: the catalogue mask does it
            if self.lo is not None:
                return [Condition("year", "le", self.lo - 1)]
            if self.hi is not None:
                return [Condition("year", "ge", self.hi + 1)]
            return []
        out = []
        if self.lo is not None:
            out.append(Condition("year", "ge", self.lo))
        if self.hi is not None:
            out.append(Condition("year", "le", self.hi))
        return out


@dataclass(frozen=True)
class Runtime(Constraint):
    """Between ``lo`` and ``hi`` minutes (inclusive; None: open)."""

    lo: int | None = None
    hi: int | None = None

    kind = "runtime"

    @property
    def label(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{self.lo}–{self.hi} min"
        if self.hi is not None:
            return f"under {self.hi + 1} min"
        return f"over {self.lo - 1} min" if self.lo is not None else "any length"

    def mask(self, cols: Columns) -> np.ndarray:
        minutes = cols.runtimes
        inside = ~np.isnan(minutes)
        if self.lo is not None:
            inside &= minutes >= self.lo
        if self.hi is not None:
            inside &= minutes <= self.hi
        return inside

    def conditions(self) -> list[Condition]:
        out = []
        if self.lo is not None:
            out.append(Condition("runtime", "ge", self.lo))
        if self.hi is not None:
            out.append(Condition("runtime", "le", self.hi))
        return out


@dataclass(frozen=True)
class Genres(Constraint):
    """Has at least one of ``genres`` (what the request asks for); negated: has none of them."""

    genres: tuple[str, ...] = ()

    kind = "genres"

    @property
    def label(self) -> str:
        names = " or ".join(g.lower() for g in self.genres)
        return f"not {names}" if self.negated else names

    def mask(self, cols: Columns) -> np.ndarray:
        rows = [cols.rows_with_genre(g) for g in self.genres]
        hit = _mask_from_rows(cols.n, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64))
        return ~hit if self.negated else hit

    def conditions(self) -> list[Condition]:
        return [Condition("genres", "in_none" if self.negated else "in_any", list(self.genres))]


@dataclass(frozen=True)
class Quality(Constraint):
    """``high``: well rated by many ("highly rated", "acclaimed"); ``gem``: well rated, little known."""

    level: str = "high"

    kind = "quality"

    @property
    def label(self) -> str:
        return "hidden gem" if self.level == "gem" else "highly rated"

    def mask(self, cols: Columns) -> np.ndarray:
        quality, count = cols.quality, cols.n_ratings
        rated = ~np.isnan(quality) & (count >= QUALITY_MIN_RATINGS)
        if not rated.any():
            return np.ones(cols.n, dtype=bool)  # a catalogue without ratings cannot say: nothing is cut
        good = rated & (quality >= np.quantile(quality[rated], 2 / 3))
        if self.level == "gem":
            good &= count <= np.median(count[rated])
        return good


KINDS: dict[str, type[Constraint]] = {c.kind: c for c in (People, Years, Runtime, Genres, Quality)}


@dataclass(frozen=True)
class Constraints:
    """The hard wishes in force: every one must hold for a pick to meet them all."""

    items: tuple[Constraint, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.items]

    def describe(self, sep: str = " · ") -> str:
        """What was understood, for the user to check: "comedy · with Tom Hanks · 1990–1999"."""
        return sep.join(self.labels)

    def masks(self, cols: Columns) -> list[np.ndarray]:
        """One boolean mask per constraint over the catalogue rows (their AND is :meth:`mask`)."""
        return [c.mask(cols) for c in self.items]

    def mask(self, cols: Columns) -> np.ndarray:
        out = np.ones(cols.n, dtype=bool)
        for m in self.masks(cols):
            out &= m
        return out

    def conditions(self) -> list[Condition]:
        """The conditions an index can apply (a subset of the constraints: the rest are masks only)."""
        out: list[Condition] = []
        for c in self.items:
            out += c.conditions() or []
        return out

    def refined(self, new: "Constraints") -> "Constraints":
        """These constraints with ``new`` added; a new constraint of the same kind and polarity replaces
        the old one ("nothing before 1980" after "the 70s" keeps only the newer span)."""
        replaced = {(c.kind, c.negated) for c in new.items}
        kept = [c for c in self.items if (c.kind, c.negated) not in replaced]
        return Constraints(tuple(kept) + tuple(new.items))

    def without(self, label: str) -> "Constraints":
        """The constraints less the one whose label matches ``label`` (case and spacing ignored)."""
        key = _label_key(label)
        return Constraints(tuple(c for c in self.items if _label_key(c.label) != key))

    def find(self, text: str) -> Constraint | None:
        """The constraint a user means by ``text`` ("/remove tom hanks", "/remove 1990-1999")."""
        key = _label_key(text)
        if not key:
            return None
        exact = [c for c in self.items if _label_key(c.label) == key]
        if exact:
            return exact[0]
        partial = [c for c in self.items if key in _label_key(c.label)]
        return partial[0] if len(partial) == 1 else None

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.items]

    @classmethod
    def from_json(cls, data: Iterable[Mapping] | None) -> "Constraints":
        out = []
        for entry in data or ():
            entry = dict(entry)
            kind = KINDS.get(str(entry.pop("kind", "")))
            if kind is None:
                continue  # a constraint type this version does not know: drop it, keep the rest
            try:
                out.append(kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}))
            except TypeError:
                continue
        return cls(tuple(out))


def _label_key(text: str) -> str:
    return " ".join(text.lower().replace("-", "–").replace("—", "–").split())


@dataclass(frozen=True)
class Fit:
    """How one item stands against the constraints: which labels it meets, and whether it was shown
    only as one of the closest because too few items meet them all."""

    met: tuple[tuple[str, bool], ...] = ()
    closest: bool = False

    @property
    def all_met(self) -> bool:
        return all(ok for _, ok in self.met)

    def missed(self) -> list[str]:
        return [label for label, ok in self.met if not ok]

    def as_dict(self) -> dict:
        return {"met": {label: ok for label, ok in self.met}, "closest": self.closest}


def fits(constraints: Constraints, masks: Sequence[np.ndarray], rows: Sequence[int],
         closest: Iterable[int] = ()) -> list[Fit]:
    """A :class:`Fit` per row from the per-constraint masks (as :meth:`Constraints.masks` gives them)."""
    closest = set(closest)
    labels = constraints.labels
    return [Fit(tuple((label, bool(m[r])) for label, m in zip(labels, masks)), r in closest) for r in rows]

