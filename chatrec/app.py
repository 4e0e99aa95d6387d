"""The one place chatrec is assembled: settings → services.

Every front end (the CLI commands, the REPL, the web UI, the HTTP API), the benchmark, the evaluations
and the study scripts build what they need from an :class:`App`; nothing else constructs an embedder,
an index, a chat model, an extractor, an explainer, a state store or an engine. Services are made on
first use, so ``chatrec index`` never loads a chat model and ``chatrec recommend`` never opens the state
database. Tests inject fakes through the constructor (``index=``, ``embedder=``, ``state=``, ``model=``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path

from chatrec.catalogue.collections import active_collection, collection_for, set_active_collection
from chatrec.catalogue.importer import load_catalog
from chatrec.catalogue.index import CatalogueIndex, IndexReport
from chatrec.ports import Embedder, StateStore, StoreError, VectorIndex
from chatrec.settings import Settings

log = logging.getLogger(__name__)

_UNSET = object()


class App:
    def __init__(self, settings: Settings, collection: str | None = None, *, index: VectorIndex | None = None,
                 embedder: Embedder | None = None, state: StateStore | None = None, model=_UNSET):
        self.settings = settings
        self.collection = collection or settings.collection or active_collection(
            settings.data_dir, collection_for(settings.catalog))
        self._index = index
        self._embedder = embedder
        self._state = state
        self._model = model
        #: what went wrong but did not stop the app (e.g. the LLM could not load): front ends show these
        self.warnings: list[str] = []

    def for_collection(self, name: str) -> "App":
        """The same settings and embedder over another collection (the ReDial evaluation's)."""
        return App(self.settings, name, embedder=self.embedder, model=self._model)

    def scratch(self, data_dir: Path, name: str) -> "App":
        """The same settings and embedder over a new, empty data dir (benchmarks index samples there)."""
        return App(self.settings.model_copy(update={"data_dir": Path(data_dir), "chroma_url": None}), name,
                   embedder=self.embedder, model=self._model)

    # -- the index ------------------------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from chatrec.adapters.embedder import SentenceEmbedder

        s = self.settings
        return SentenceEmbedder(s.embedding_model, batch_size=s.embed_batch_size, backend=s.embedding_backend,
                                cache_dir=s.cache_dir)

    @cached_property
    def vector_index(self) -> VectorIndex:
        if self._index is not None:
            return self._index
        from chatrec.adapters.chroma import ChromaIndex

        return ChromaIndex(self.collection, self.settings.data_dir, self.settings.chroma_url)

    @cached_property
    def index(self) -> CatalogueIndex:
        cache = None if self._index is not None else self.settings.cache_dir
        return CatalogueIndex(self.vector_index, self.embedder, cache, self.settings.index_batch_size)

    def index_file(self, path: Path, mapping: Mapping[str, str] | None = None, rebuild: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> IndexReport:
        """Index a catalogue file into this app's collection and make it the active one."""
        items = load_catalog(path, mapping)  # validates everything before touching the index
        report = self.index.build(items, source=str(path), rebuild=rebuild, progress=progress)
        set_active_collection(self.settings.data_dir, self.collection)
        self.__dict__.pop("catalogue", None)
        return report

    def ensure_index(self, progress: Callable[[int, int], None] | None = None) -> IndexReport | None:
        """Build the default catalogue's index when it is missing or was interrupted."""
        if self.index.is_ready():
            return None
        if self.collection != collection_for(self.settings.catalog) and self.index.exists():
            raise StoreError(f"the index {self.collection!r} is incomplete: run `chatrec index PATH` "
                             "with its catalogue to resume")
        return self.index_file(self.settings.catalog, progress=progress)

    # -- recommending ---------------------------------------------------------------------------
    @cached_property
    def catalogue(self):
        return self.index.catalogue()

    @cached_property
    def weights(self):
        return self.settings.weights(self.collection)

    @cached_property
    def behaviour(self):
        from chatrec.recommend.behaviour import BehaviourModel, behaviour_from_log

        s = self.settings
        return BehaviourModel(self.catalogue, lambda: behaviour_from_log(self.catalogue, s.interactions, s.liked_rating))

    @cached_property
    def recommender(self):
        from chatrec.recommend.recommender import Recommender

        s = self.settings
        return Recommender(self.catalogue, self.vector_index, self.embedder, self.weights, self.behaviour,
                           s.candidates, s.filter_disliked)

    # -- reading and explaining -------------------------------------------------------------------
    @property
    def model(self):
        """The configured chat model, or None (``CHATREC_LLM=none``, or it could not load: see warnings)."""
        if self._model is _UNSET:
            self._model = self.load_model(required=False)
        return self._model

    def load_model(self, required: bool = True):
        """Load the configured chat model; with ``required``, a failure raises ``LLMError``."""
        from chatrec.llm.backends import LLMError, make_backend

        if self._model is not _UNSET and self._model is not None:
            return self._model
        try:
            self._model = make_backend(self.settings)
        except LLMError as exc:
            if required:
                raise
            self.warnings.append(f"LLM unavailable, continuing without it: {exc}")
            self._model = None
        return self._model

    @cached_property
    def vocabulary(self):
        """What the rule reader maps onto: the catalogue's tags, titles and people."""
        from chatrec.reading.people import PeopleIndex
        from chatrec.reading.rules import Vocabulary
        from chatrec.reading.titles import TitleIndex

        cat = self.catalogue
        years = [None if y != y else int(y) for y in cat.years.tolist()]  # NaN: no year
        titles = TitleIndex(((i, keys[0], y, w, keys[1:]) for i, keys, y, w in
                             zip(cat.ids, cat.title_keys, years, cat.engagement.tolist())), normalised=True)
        return Vocabulary(cat.tag_counts, titles, PeopleIndex(counts=cat.credit_counts()), cat.latest_year, frozenset(cat.genre_names))

    @cached_property
    def extractor(self):
        from chatrec.llm.extract import Extractor, LLMExtractor
        from chatrec.reading.rules import RuleExtractor

        s = self.settings
        model = self.model if s.extractor in ("llm", "union", "fill") else None
        rules = RuleExtractor(self.vocabulary, self.embedder.encode)
        return Extractor(rules, LLMExtractor(model) if model is not None else None, s.extractor,
                         self.vocabulary.people)

    @cached_property
    def explainer(self):
        from chatrec.llm.explain import Explainer

        return Explainer(self.model, self.vocabulary.titles)

    # -- conversations --------------------------------------------------------------------------
    @cached_property
    def state(self) -> StateStore:
        if self._state is not None:
            return self._state
        from chatrec.adapters.sqlite_state import SqliteState

        return SqliteState(Path(self.settings.data_dir) / "state.sqlite3")

    @cached_property
    def engine(self):
        """The chat engine: turns, feedback, one-shot recommendations (front ends render what it returns)."""
        from chatrec.engine import ChatEngine

        s = self.settings
        return ChatEngine(self.recommender, self.extractor, self.explainer, self.state, k=5,
                          context_seed=s.context_seed, log_messages=s.log_messages)

    def engine_with(self, llm: bool, state: StateStore | None = None):
        """An engine over this app's recommender with or without the chat model, on its own state store (a
        throwaway SQLite file unless one is given): the benchmark compares the two."""
        import tempfile

        from chatrec.adapters.sqlite_state import SqliteState
        from chatrec.engine import ChatEngine
        from chatrec.llm.explain import Explainer

        if state is None:
            state = SqliteState(Path(tempfile.mkdtemp(prefix="chatrec-bench-")) / "state.sqlite3")
        explainer = self.explainer if llm else Explainer(None, self.vocabulary.titles)
        s = self.settings
        return ChatEngine(self.recommender, self.extractor, explainer, state, k=5, context_seed=s.context_seed,
                          log_messages=s.log_messages)

    @cached_property
    def one_shot(self):
        """An engine for one-shot ``recommend`` calls: nothing is stored, so no state database is opened."""
        from chatrec.adapters.memory import MemoryState
        from chatrec.engine import ChatEngine

        s = self.settings
        return ChatEngine(self.recommender, self.extractor, self.explainer, MemoryState(), k=5,
                          context_seed=s.context_seed, log_messages=s.log_messages)
