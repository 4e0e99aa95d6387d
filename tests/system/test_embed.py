"""The embedder: ONNX Runtime must give sentence-transformers' vectors, and say when it cannot."""

import json
import shutil

import numpy as np
import pytest

from chatrec.adapters import onnx_export as embed_onnx
from chatrec.adapters.embedder import EmbedderError, SentenceEmbedder, default_model_path

TEXTS = [
    "a funny heist movie with a twist",
    "Alien (1979). Horror, Sci-Fi. The crew of a commercial spacecraft meets a deadly lifeform.",
    "no romance, something scary",
    "",
]


def test_default_backend_is_onnx_with_sentence_transformers_vectors(embedder):
    assert embedder.backend == "onnx"
    reference = SentenceEmbedder(backend="torch")
    got, want = embedder.encode(TEXTS), reference.encode(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384)
    assert np.min(np.sum(got * want, axis=1)) > 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_export_is_cached_and_reused_without_pytorch(tmp_path, embedder):
    first = SentenceEmbedder(cache_dir=tmp_path)
    assert first.backend == "onnx"
    exports = list((tmp_path / "onnx").glob("*/model.onnx"))
    assert len(exports) == 1 and json.loads((exports[0].parent / "verified.json").read_text())["ok"]
    second = SentenceEmbedder(cache_dir=tmp_path)
    assert second.backend == "onnx"
    assert second._model is None  # the verified export loads without sentence-transformers
    assert np.allclose(second.encode(TEXTS), first.encode(TEXTS), atol=1e-6)


def test_long_text_is_truncated_like_sentence_transformers(embedder):
    long_text = "space " * 2000
    got = embedder.encode([long_text])
    want = SentenceEmbedder(backend="torch").encode([long_text])
    assert float(got[0] @ want[0]) > 0.9999


def _model_copy(tmp_path, pooling: dict):
    src = default_model_path()
    dst = tmp_path / "model-copy"
    shutil.copytree(src, dst)
    config = json.loads((dst / "1_Pooling" / "config.json").read_text())
    config.update(pooling)
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return dst


def test_unsupported_model_falls_back_to_pytorch(tmp_path):
    model = _model_copy(tmp_path, {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    with pytest.raises(embed_onnx.Unsupported, match="pooling"):
        embed_onnx.describe(model)
    auto = SentenceEmbedder(model, cache_dir=tmp_path / "cache")
    assert auto.backend == "torch"
    assert auto.encode(["hello"]).shape == (1, 384)
    forced = SentenceEmbedder(model, backend="onnx", cache_dir=tmp_path / "cache")
    with pytest.raises(EmbedderError, match="ONNX"):
        forced.encode(["hello"])


def test_int8_has_its_own_model_name_and_unknown_backend_is_refused():
    assert SentenceEmbedder(backend="onnx-int8").name.endswith("+int8")
    with pytest.raises(EmbedderError, match="unknown embedding backend"):
        SentenceEmbedder(backend="cuda")
