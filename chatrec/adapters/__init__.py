"""The real adapters behind :mod:`chatrec.ports` (Chroma, the sentence embedder, SQLite) and their in-memory
fakes (:mod:`chatrec.adapters.memory`), which run the same contract tests."""
