"""What one message says: the extraction result, whoever read it (the rules or an LLM). Pure data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from chatrec.core.constraints import Constraints

#: the 18 MovieLens genres, the vocabulary genre reading maps onto
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
GENRE_KEYS = {g.lower(): g for g in GENRES}


class MentionedItem(BaseModel):
    title: str
    id: str | None = None
    sentiment: float = Field(0.0, ge=-1.0, le=1.0)
    unseen: bool = False  # named as not seen ("I haven't seen X"): says nothing about the user's taste


class Preferences(BaseModel):
    """One message's preferences. Tags are catalogue tag keys (genres lower-cased: "sci-fi").

    ``constraints`` are the hard wishes it states (people, years, runtime, requested and excluded genres,
    quality); ``mood`` is "lighter" or "darker" when the message turns the mood ("something lighter now")."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    liked_tags: list[str] = Field(default_factory=list)
    disliked_tags: list[str] = Field(default_factory=list)
    items: list[MentionedItem] = Field(default_factory=list)
    sentiment: float = Field(0.0, ge=-1.0, le=1.0)
    query: str = ""
    constraints: Constraints = Field(default_factory=Constraints)
    mood: str | None = None
    source: str = "rules"
    notes: list[str] = Field(default_factory=list)

    @field_validator("liked_tags", "disliked_tags")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(t for t in v if t))

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, v):
        return v if isinstance(v, Constraints) else Constraints.from_json(v)

    @field_serializer("constraints")
    def _constraints_json(self, value: Constraints) -> list[dict]:
        return value.to_json()

    @property
    def is_empty(self) -> bool:
        return not (self.liked_tags or self.disliked_tags or self.items or self.constraints)

    def mentioned(self) -> dict[str, float]:
        """Item id -> sentiment of the titles that tell something about the user's taste, for the profile.
        A title named as not seen is left out: neither liked, disliked nor watched, it may be recommended."""
        return {m.id: m.sentiment for m in self.items if m.id and not m.unseen}

    def genres(self, polarity: str) -> set[str]:
        """The MovieLens genres among the liked (``+``) or disliked (``-``) tags."""
        tags = self.liked_tags if polarity == "+" else self.disliked_tags
        return {GENRE_KEYS[t] for t in tags if t in GENRE_KEYS}
