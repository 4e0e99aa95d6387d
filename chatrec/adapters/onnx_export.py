"""Run a sentence-transformers model on ONNX Runtime, with vectors checked against the original.

Why: on this 2-core CPU, PyTorch eager spends ~20 ms per short query on all-MiniLM-L6-v2; the same
graph exported to ONNX and fused by ORT's transformer optimizer (attention, skip-layer-norm, GELU)
runs in ~6 ms with the same vectors. sentence-transformers' own ``backend="onnx"`` needs optimum,
which we do not ship, so the export is done here once per model and cached in the data directory.

Only the plain shape is handled: a BERT-family Transformer + mean Pooling (+ Normalize). Anything
else (CLS pooling, dense heads, other architectures) is reported as unsupported and the caller keeps
using sentence-transformers on PyTorch. Every export is verified against sentence-transformers on
probe sentences before it is used; a mismatch deletes the export and falls back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export recipe changes, so old caches are not reused
MIN_COSINE = 0.9999
# int8 weights change the vectors a little (measured: min cosine ~0.98 to fp32, ~8 of 10 top-10
# neighbours shared), so an int8 index is recorded under its own model name and never mixed with fp32.
MIN_COSINE_INT8 = 0.95
PROBES = [
    "a funny space adventure",
    "Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy. Led by Woody, Andy's toys live happily.",
    "something dark and slow, no romance please",
    "Heat (1995). Action, Crime, Thriller. Obsessive master thief Neil McCauley leads a top-notch crew.",
    "x",
]


class Unsupported(RuntimeError):
    """The model folder is not a shape this exporter handles (use PyTorch instead)."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def describe(model_dir: Path) -> dict:
    """What the export needs from a sentence-transformers folder, or Unsupported."""
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise Unsupported("no modules.json")
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise Unsupported(f"modules {kinds}")
    pooling_dir = model_dir / modules[1].get("path", "1_Pooling")
    pooling = _read_json(pooling_dir / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_lasttoken")
    ):
        raise Unsupported("pooling is not mean-of-tokens")
    config = _read_json(model_dir / "config.json")
    if config.get("model_type") not in ("bert",):
        raise Unsupported(f"model_type {config.get('model_type')!r}")
    if not (model_dir / "tokenizer.json").is_file():
        raise Unsupported("no fast tokenizer (tokenizer.json)")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    max_len = int(st_config.get("max_seq_length") or config.get("max_position_embeddings") or 512)
    return {
        "max_seq_length": min(max_len, int(config.get("max_position_embeddings", max_len))),
        "num_heads": int(config["num_attention_heads"]),
        "hidden_size": int(config["hidden_size"]),
        "do_lower_case": bool(st_config.get("do_lower_case", False)),
    }


def fingerprint(model_dir: Path) -> str:
    """Identifies the weights and config cheaply (names, sizes, mtimes), plus the recipe version."""
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and not p.name.endswith(".onnx"):
            st = p.stat()
            h.update(f"{p.relative_to(model_dir)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _export(model_dir: Path, out: Path, info: dict) -> None:
    import warnings

    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    class LastHidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Eager attention exports to plain MatMul/Softmax, which ORT's optimizer fuses into one Attention op.
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()
    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {0: "batch", 1: "seq"}
    raw = out.with_name("raw.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(
            LastHidden(bert).eval(), (ids, mask, torch.zeros_like(ids)), str(raw),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "last_hidden_state": axes},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(raw), model_type="bert", num_heads=info["num_heads"], hidden_size=info["hidden_size"], opt_level=1
    )
    fused.save_model_to_file(str(out))
    raw.unlink(missing_ok=True)


class OnnxEncoder:
    """Tokenise with the model's fast tokenizer, run the fused graph, mean-pool and L2-normalise."""

    def __init__(self, onnx_path: Path, model_dir: Path, info: dict, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json may carry a fixed pad/truncation length; use sentence-transformers' instead.
        self.tokenizer.enable_truncation(max_length=info["max_seq_length"])
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
        self.lower = info.get("do_lower_case", False)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        # Idle pool threads must not busy-wait: the LLM and the UI share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.lower:
            texts = [t.lower() for t in texts]
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32)


def _quantize(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a "run pre-processing" advice on the root logger; it does not apply here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        # Per-channel + reduced range keep MiniLM closest to fp32 on AVX2 CPUs without VNNI.
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops defeat shape inference
        )
    finally:
        root.setLevel(level)


def load_or_export(model_dir: Path, cache_dir: Path, reference=None, int8: bool = False) -> OnnxEncoder:
    """The cached, verified ONNX encoder for ``model_dir``; exports and verifies it on first use.

    ``reference`` is a callable texts -> vectors (sentence-transformers on PyTorch) used to verify a
    fresh export. Raises Unsupported when the model cannot be served this way.
    """
    info = describe(model_dir)
    suffix = "-int8" if int8 else ""
    target_dir = cache_dir / "onnx" / f"{model_dir.resolve().name}-{fingerprint(model_dir)}{suffix}"
    target = target_dir / "model.onnx"
    if target.is_file() and _read_json(target_dir / "verified.json").get("ok"):
        return OnnxEncoder(target, model_dir, info)
    if reference is None:
        raise Unsupported("no verified export yet and no reference model to verify one")
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="onnx-export-", dir=cache_dir))
    try:
        try:
            if int8:
                _export(model_dir, work / "fp32.onnx", info)
                _quantize(work / "fp32.onnx", work / "model.onnx")
                (work / "fp32.onnx").unlink()
            else:
                _export(model_dir, work / "model.onnx", info)
        except Exception as exc:  # exporter failures come in many types; all mean "use PyTorch"
            raise Unsupported(f"export failed: {type(exc).__name__}: {exc}") from exc
        encoder = OnnxEncoder(work / "model.onnx", model_dir, info)
        got, want = encoder.encode(PROBES), np.asarray(reference(PROBES), dtype=np.float32)
        cosine = float(np.min(np.sum(got * want, axis=1)))
        if cosine < (MIN_COSINE_INT8 if int8 else MIN_COSINE):
            raise Unsupported(f"exported vectors differ from sentence-transformers (min cosine {cosine:.5f})")
        (work / "verified.json").write_text(json.dumps({"ok": True, "min_cosine": cosine, "info": info}))
        # Publish atomically; if a concurrent exporter won the race, its copy is just as good.
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(work, target_dir)
        except OSError as exc:
            log.debug("ONNX export not published (%s); using it for this process only", exc)
        log.info("exported %s to ONNX in %.1f s (min cosine %.6f)", model_dir.name,
                 time.perf_counter() - started, cosine)
        return encoder  # the session already holds the graph in memory
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
