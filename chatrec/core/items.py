"""Catalogue items: the nouns every other part speaks about. Pure data, no I/O.

An item is anything a catalogue lists: a film, a product, an article, a course, an album. Only
``id`` and ``title`` are required; ``text`` and the tag fields feed the embedding and the content
match (C). Two people roles serve hard wishes ("a Nolan film", "with Tom Hanks"): ``directors`` is
the item's makers (a film's directors, a book's authors, an album's artist, a product's brand) and
``cast`` its performers in billing order. ``runtime`` is a length in minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def tag_key(tag: str) -> str:
    """The normalised form tags are matched on: lower-case, single spaces, no edge punctuation."""
    return re.sub(r"\s+", " ", tag.strip().lower()).strip(" .,;:!?\"'")


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    text: str = ""
    tags: tuple[str, ...] = ()
    year: int | None = None
    genres: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    n_ratings: int = 0
    mean_rating: float | None = None
    recent_ratings: int = 0
    popularity: float | None = None
    aka: tuple[str, ...] = ()  # alternative titles, for matching what people type
    directors: tuple[str, ...] = ()  # the makers: directors, authors, artists, brands
    cast: tuple[str, ...] = ()  # performers, in billing order
    runtime: int | None = None  # minutes
    extra: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def display_title(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Genres first, then user tags, then keywords, de-duplicated on their normalised key."""
        seen: set[str] = set()
        out: list[str] = []
        for t in (*self.genres, *self.tags, *self.keywords):
            k = tag_key(t)
            if k and k not in seen:
                seen.add(k)
                out.append(t)
        return tuple(out)

    @property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(tag_key(t) for t in self.all_tags if tag_key(t))

    @property
    def overview(self) -> str:
        """The description without the "Title (Year)." our movie texts start with."""
        text = self.text
        if text.startswith(self.display_title):
            text = text[len(self.display_title):].lstrip(" .:-")
        return text

    def embedding_text(self) -> str:
        """What the embedder reads: title, genres, description, then tags and keywords.

        MiniLM reads ~256 word pieces, so the most telling fields come first. People are left out:
        they are hard wishes, matched exactly, not meanings.
        """
        parts = [self.display_title + "."]
        if self.genres:
            parts.append(", ".join(self.genres) + ".")
        if self.overview:
            parts.append(self.overview)
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags[:12]) + ".")
        if self.keywords:
            parts.append("Keywords: " + ", ".join(self.keywords[:20]) + ".")
        return " ".join(parts)

    def content_hash(self) -> str:
        """A stable hash of everything indexed for this item: equal hash, nothing to re-embed."""
        payload = json.dumps(self.to_record(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def to_record(self) -> dict:
        rec = {
            "id": self.id, "title": self.title, "text": self.text, "tags": list(self.tags),
            "year": self.year, "genres": list(self.genres), "keywords": list(self.keywords),
            "n_ratings": self.n_ratings, "mean_rating": self.mean_rating,
            "recent_ratings": self.recent_ratings, "popularity": self.popularity,
        }
        # optional fields only when set, so catalogues without them keep their content hashes
        for name in ("aka", "directors", "cast"):
            if getattr(self, name):
                rec[name] = list(getattr(self, name))
        if self.runtime is not None:
            rec["runtime"] = self.runtime
        return rec

    @classmethod
    def from_record(cls, rec: Mapping) -> Item:
        return cls(
            id=str(rec["id"]), title=str(rec["title"]), text=rec.get("text") or "",
            tags=tuple(rec.get("tags") or ()), year=rec.get("year"),
            genres=tuple(rec.get("genres") or ()), keywords=tuple(rec.get("keywords") or ()),
            n_ratings=int(rec.get("n_ratings") or 0), mean_rating=rec.get("mean_rating"),
            recent_ratings=int(rec.get("recent_ratings") or 0), popularity=rec.get("popularity"),
            aka=tuple(rec.get("aka") or ()), directors=tuple(rec.get("directors") or ()),
            cast=tuple(rec.get("cast") or ()), runtime=rec.get("runtime"),
        )


def tag_vocabulary(items: Iterable[Item]) -> dict[str, str]:
    """Normalised tag key → its most common display form, across the catalogue."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        for t in item.all_tags:
            k = tag_key(t)
            if k:
                forms = counts.setdefault(k, {})
                forms[t] = forms.get(t, 0) + 1
    return {k: max(forms.items(), key=lambda kv: (kv[1], kv[0]))[0] for k, forms in counts.items()}
