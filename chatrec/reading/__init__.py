"""Reading a message without a model: pure rules over the catalogue's own vocabulary.

``lexicon`` (genre cues and the negation-aware clause scan), ``titles`` (catalogue titles in free text),
``people`` (catalogue people in free text: "a Nolan film", "with DiCaprio", "the Coen brothers"),
``wishes`` (years, decades, runtime, quality, mood, soft dislikes) and ``rules`` (:class:`RuleExtractor`,
which puts them together into :class:`chatrec.core.preferences.Preferences`).
"""
