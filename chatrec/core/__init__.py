"""The pure core: what a recommendation is, how it is scored, what a user's profile and wishes are.

Nothing in this package imports a database, a vector index, an embedder, an LLM client or a UI
(``tests/unit/test_core_is_pure.py`` checks it): only the standard library, numpy, scipy and pydantic.
Read it first: ``items`` (the catalogue's nouns), ``scoring`` (the paper's fused score, the one
formula), ``constraints`` (hard wishes: people, years, runtime, genres, quality), ``preferences``
(what one message says), ``profile`` (what a session knows, and how a message or a click changes it)
and ``dialogue`` (the turn's decisions: ask, refine or move on).
"""
