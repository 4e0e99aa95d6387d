"""The HTTP API (``chatrec serve``): a versioned JSON API over the chat engine, and an OpenAI-compatible
``/v1/chat/completions``, both thin renderers of :class:`chatrec.engine.ChatEngine` like the REPL and the UI.

Routes (all JSON; errors are ``{"error": {"type", "message"}}``, never a stack trace)::

    GET    /v1/health                      liveness, what is loaded, how busy the lanes are (no key needed)
    POST   /v1/recommend                   one-shot ranking: the ``chatrec recommend --json`` shape
    POST   /v1/users/{user}/turns          a chat turn (SSE with ``"stream": true`` or Accept: text/event-stream)
    POST   /v1/users/{user}/feedback       like / dislike / watched / ... on a pick; re-ranks at once
    GET    /v1/users/{user}/profile        what the engine holds about the user, and the current picks
    GET    /v1/users/{user}/history        the user's recent messages
    DELETE /v1/users/{user}                forget-me: every stored row of the user is deleted
    GET    /v1/models, POST /v1/chat/completions   OpenAI-compatible; the request's ``user`` is the user id

Threading: the event loop never runs engine code. Blocking calls go to worker threads in three lanes: the
*turn* lane (``CHATREC_API_WORKERS`` threads: a message's reading, retrieval and ranking, one-shot
recommendations; CPU-bound), the *quick* lane (8 threads: feedback re-ranks, profiles, history, forget-me,
storing a finished turn) and the *LLM* lane (one call at a time for the in-process llama.cpp model, which
serialises calls anyway). So a model that talks for seconds never holds up feedback, profiles or picks-only
turns, and a profile never queues behind a burst of turns. At most ``CHATREC_API_LLM_QUEUE`` requests wait
for the LLM; more get 503 with Retry-After.

Sessions live in a bounded LRU keyed by user id (evicted ones are restored from SQLite); one API key serves
one application, which passes its own end users' ids: no route lists users, and a user id reaches only
its own session. Request bodies over ``CHATREC_API_MAX_BODY`` bytes get 413 before they are read; message
text is never logged unless ``CHATREC_LOG_MESSAGES`` is on (the request log has method, route, status, time).

Only pydantic and the standard library are imported at module level: ``chatrec recommend --json`` uses
:func:`recommend_payload` without loading FastAPI.
"""

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from chatrec.core.profile import EVENTS

log = logging.getLogger(__name__)

#: a user id: letters, digits and ``._@-``, 1–64 characters, starting with a letter or digit. No ``:``, so
#: the web UI's random browser profiles (``browser:…``) are out of the API's reach.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_USER_ID = re.compile(USER_ID_PATTERN)
KEEPALIVE_S = 15.0  # an SSE comment this often while a stream waits for the LLM
QUICK_THREADS = 8  # the quick lane: feedback, profile, history, forget-me, storing a turn
MAX_CONNECTIONS = 256  # uvicorn answers 503 beyond this many concurrent connections
DEFAULT_PORT = 8765


# -- the recommend --json shape, shared with the CLI -------------------------------------------------
def recommend_warnings(reply) -> list[str]:
    """The notes a one-shot reply carries besides the constraint note (the CLI prints them on stderr)."""
    return [n for n in reply.notes if n != reply.constraint_note]


def recommend_payload(reply) -> dict:
    """The ``chatrec recommend --json`` object of a one-shot reply; reading it consumes the explanation."""
    payload = {"items": [r.to_json() for r in reply.recommendations], "cold_start": reply.cold_start,
               "warnings": recommend_warnings(reply), "understood": reply.understood}
    if reply.constraint_note:
        payload["note"] = reply.constraint_note
    if reply.explanation is not None:
        payload["explanation"] = reply.text()
        outcome = reply.outcome
        if outcome.fallback_reason:
            payload["explanation_fallback"] = outcome.fallback_reason
        if outcome.repairs:
            payload["explanation_corrections"] = [str(p) for p in outcome.repairs]
    if reply.preferences is not None:
        payload["preferences"] = reply.preferences
    return payload


# -- binding -------------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``; names other than
    localhost count as reachable from outside."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, settings) -> str | None:
    """Why ``chatrec serve`` must not start on ``host`` with these settings, or None."""
    if not is_loopback(host) and settings.api_key is None:
        return (f"--host {host} is reachable from other machines: set CHATREC_API_KEY to a long random secret "
                "first (clients send it as Authorization: Bearer KEY), or keep --host 127.0.0.1")
    return None


# -- request and response models --------------------------------------------------------------------
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class RecommendRequest(BaseModel):
    """A one-shot recommendation: nothing is stored, no user is involved."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", description="What the user feels like, in their words; empty for popular picks. "
                      "Longer than 2,000 characters: only the start is read (a warning says so).")
    like_tags: list[Tag] = Field(default_factory=list, max_length=50, description="Tags or genres to favour.")
    dislike_tags: list[Tag] = Field(default_factory=list, max_length=50, description="Tags or genres to push down.")
    k: int = Field(10, ge=1, le=200, description="How many picks.")
    filter_disliked: bool | None = Field(None, description="Drop disliked-tag items outright (default: the "
                                         "server's CHATREC_FILTER_DISLIKED).")
    explain: bool = Field(False, description="Explain the picks in words (uses the LLM when there is one).")


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., description="The user's message (control characters are dropped; past 2,000 "
                      "characters only the start is read, and a note says so).")
    stream: bool = Field(False, description="Answer as server-sent events: `picks`, one `line` per explanation "
                         "line, then `done` (also chosen by Accept: text/event-stream).")
    explain: bool = Field(True, description="Explain the picks (false: picks only, never waits for the LLM).")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pick: int | None = Field(None, ge=1, le=1000, description="The pick's number in the current list (1-based).")
    item_id: str | None = Field(None, min_length=1, max_length=200, description="Or the item's id; it must be in "
                                "the current list.")
    event: Literal[EVENTS] = Field(..., description="What the user did with it.")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_target(self):
        if (self.pick is None) == (self.item_id is None):
            raise ValueError("give exactly one of pick (a number in the current list) or item_id")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(..., max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request; fields chatrec has no use for (temperature, ...) are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=500)
    stream: bool = False
    user: str | None = Field(None, description="The chatrec user id (required).")


class Breakdown(BaseModel):
    similarity: float
    behaviour: float
    content: float
    penalty: float


class Item(BaseModel):
    """One pick, as ``chatrec recommend --json`` prints it."""

    model_config = ConfigDict(extra="allow")
    id: str
    title: str
    year: int | None
    score: float
    tags: list[str]
    breakdown: Breakdown
    matched_tags: list[str]
    disliked_tags: list[str]
    genres: list[str]
    directors: list[str]
    cast: list[str]
    runtime: int | None
    constraints: dict[str, bool] | None = Field(None, description="Each hard wish and whether the pick meets it.")
    closest: bool | None = Field(None, description="One of the closest picks: not every hard wish is met.")


class Pick(Item):
    n: int = Field(..., description="Its number in the list (what feedback's `pick` refers to).")
    reason: str = Field(..., description="A short reason from the breakdown.")


class RecommendResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: list[Item]
    cold_start: bool
    warnings: list[str]
    understood: str
    note: str | None = None
    explanation: str | None = None
    explanation_fallback: str | None = None
    explanation_corrections: list[str] | None = None
    preferences: dict[str, Any] | None = None


class ExplanationLine(BaseModel):
    text: str
    pick: int | None = Field(None, description="The pick it is about (1-based), when known.")
    source: str = Field(..., description="model: the model's reviewed line; facts: the pick's fact line.")


class TurnResponse(BaseModel):
    user: str
    kind: str = Field(..., description="picks, or clarify (a question, with popular picks meanwhile).")
    header: str
    understood: str
    notes: list[str]
    note: str | None = Field(None, description="Too few items meet the hard wishes: the list ends with the closest.")
    cold_start: bool
    picks: list[Pick]
    preferences: dict[str, Any] | None
    explanation: list[ExplanationLine]
    explanation_fallback: str | None
    explanation_corrections: list[str]
    explanation_seconds: float | None = Field(None, description="Writing and reviewing the explanation (the "
                                              "model's time, without waiting for it).")
    seconds: float = Field(..., description="The whole turn, waits included.")


class FeedbackResponse(BaseModel):
    user: str
    header: str
    understood: str
    picks: list[Pick]
    seconds: float
    rerank_seconds: float | None


class ProfileView(BaseModel):
    constraints: list[str]
    liked_tags: dict[str, float]
    disliked_tags: dict[str, float]
    liked_items: list[str]
    disliked_items: list[str]
    watched_items: list[str]


class ProfileResponse(BaseModel):
    user: str
    understood: str
    profile: ProfileView
    picks: list[Pick]


class Message(BaseModel):
    role: str
    content: str


class HistoryResponse(BaseModel):
    user: str
    messages: list[Message]


class ForgetResponse(BaseModel):
    user: str
    forgotten: bool


class Lanes(BaseModel):
    turn_running: int
    turn_waiting: int
    quick_running: int
    quick_waiting: int
    llm_running: int
    llm_waiting: int
    llm_admitted: int = Field(..., description="Requests holding or waiting for the LLM (503 past capacity + queue).")


class HealthResponse(BaseModel):
    status: str
    version: str
    api: str
    llm: str
    items: int
    lanes: Lanes


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- rendering ----------------------------------------------------------------------------------------
def pick_json(n: int, rec) -> dict:
    from chatrec.llm.explain import reason

    return {"n": n, **rec.to_json(), "reason": reason(rec)}


def picks_json(recs) -> list[dict]:
    return [pick_json(n, r) for n, r in enumerate(recs, 1)]


def picks_text(reply) -> str:
    """What the REPL shows before the explanation: notes, the header, the picks with their reasons."""
    from chatrec.llm.explain import reason

    rows = [*reply.notes, reply.header]
    rows += [f"{n}. {'≈ ' if r.fit.closest else ''}{r.item.display_title} — {reason(r)}"
             for n, r in enumerate(reply.recommendations, 1)]
    return "\n".join(rows)


def line_json(line) -> dict:
    return {"text": line.text, "pick": None if line.pick is None else line.pick + 1, "source": line.source}


def turn_head(user: str, reply) -> dict:
    return {"user": user, "kind": reply.kind, "header": reply.header, "understood": reply.understood,
            "notes": list(reply.notes), "note": reply.constraint_note, "cold_start": reply.cold_start,
            "picks": picks_json(reply.recommendations), "preferences": reply.preferences}


def turn_tail(reply, seconds: float) -> dict:
    outcome = reply.outcome
    return {"explanation_fallback": outcome.fallback_reason if outcome else None,
            "explanation_corrections": [str(p) for p in outcome.repairs] if outcome else [],
            "explanation_seconds": round(outcome.seconds, 4) if outcome else None,
            "seconds": round(seconds, 4)}


def sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def error_json(kind: str, message: str, **extra) -> dict:
    return {"error": {"type": kind, "message": message, **extra}}


# -- sessions -------------------------------------------------------------------------------------------
class Sessions:
    """Live engine sessions by user id, restored from the state database when not in memory (LRU)."""

    def __init__(self, engine, capacity: int):
        self.engine = engine
        self.capacity = capacity
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user: str):
        with self._lock:
            session = self._items.get(user)
            if session is not None:
                self._items.move_to_end(user)
                return session
        loaded = self.engine.session(user)  # SQLite and a re-rank: not under the cache's lock
        with self._lock:
            session = self._items.setdefault(user, loaded)  # two first requests at once share the first one
            self._items.move_to_end(user)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return session

    def drop(self, user: str) -> None:
        with self._lock:
            self._items.pop(user, None)

    def __len__(self) -> int:
        return len(self._items)


class OneShots:
    """One-shot engines, one per concurrent call: ``ChatEngine.recommend`` sets the engine's ``k`` for the
    call, so two calls with different ``k`` must not share an engine."""

    def __init__(self, application):
        from chatrec.adapters.memory import MemoryState

        self._make = lambda: application.engine_with(llm=True, state=MemoryState())
        self._free: list = []
        self._lock = threading.Lock()

    def recommend(self, *args, **kwargs):
        with self._lock:
            engine = self._free.pop() if self._free else None
        engine = engine or self._make()
        try:
            return engine.recommend(*args, **kwargs)
        finally:
            with self._lock:
                self._free.append(engine)


# -- the application ----------------------------------------------------------------------------------
class Busy(Exception):
    """The LLM lane's queue is full."""


class Api:
    """The engine, its sessions and the lanes of worker threads, shared by the routes."""

    def __init__(self, application, settings):
        self.app = application
        self.settings = settings
        self.engine = application.engine
        self.sessions = Sessions(self.engine, settings.api_sessions)
        self.one_shots = OneShots(application)
        self.model_loaded = application.model is not None
        backend = getattr(application.model, "info", None)
        self.llm_name = f"{backend.name}:{backend.model}" if backend is not None else "none"
        local = getattr(backend, "name", None) == "local"
        self.llm_capacity = 1 if local else settings.api_workers
        self.extract_with_llm = self.model_loaded and settings.extractor in ("llm", "union", "fill")
        self.log_messages = settings.log_messages
        self._limiters: dict | None = None  # anyio limiters, made in the event loop on first use
        self.llm_admitted = 0  # touched only on the event loop

    def limiters(self) -> dict:
        import anyio

        if self._limiters is None:
            self._limiters = {"turn": anyio.CapacityLimiter(self.settings.api_workers),
                              "quick": anyio.CapacityLimiter(QUICK_THREADS),
                              "llm": anyio.CapacityLimiter(self.llm_capacity)}
        return self._limiters

    async def run(self, lane: str, fn: Callable, *args):
        """``fn(*args)`` on a worker thread of ``lane`` (turn, quick or llm); waits for it even if cancelled."""
        import anyio

        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiters()[lane])

    def lanes(self) -> dict:
        out = {}
        for name, limiter in self.limiters().items():
            stats = limiter.statistics()
            out[f"{name}_running"], out[f"{name}_waiting"] = stats.borrowed_tokens, stats.tasks_waiting
        return {**out, "llm_admitted": self.llm_admitted}

    def needs_llm(self, explain: bool) -> bool:
        return self.model_loaded and (explain or self.extract_with_llm)

    def admit(self, llm: bool) -> None:
        if not llm:
            return
        if self.llm_admitted >= self.llm_capacity + self.settings.api_llm_queue:
            raise Busy()
        self.llm_admitted += 1

    def release(self, llm: bool) -> None:
        if llm:
            self.llm_admitted -= 1


def _auth_dependencies(settings):
    """The key check, as dependencies that also document the two ways to send it in OpenAPI."""
    from fastapi import Depends, HTTPException, Security
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer CHATREC_API_KEY")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: CHATREC_API_KEY")
    key = settings.api_key.get_secret_value().encode("utf-8") if settings.api_key is not None else None

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
                    api_key: Annotated[str | None, Security(header)] = None) -> None:
        if key is None:
            return
        given = credentials.credentials if credentials is not None else api_key
        if not given:
            raise HTTPException(401, "missing API key: send Authorization: Bearer KEY (or X-API-Key: KEY)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key):
            raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})

    return [Depends(require_key)]


def create_app(application, settings=None):
    """The FastAPI application over an :class:`chatrec.app.App` whose index is built."""
    import anyio
    from fastapi import APIRouter, FastAPI, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from chatrec import __version__
    from chatrec.adapters.sqlite_state import StateError
    from chatrec.engine import EngineError

    settings = settings or application.settings
    api = Api(application, settings)
    engine = api.engine
    UserId = Annotated[str, Path(pattern=USER_ID_PATTERN, description="The user id: letters, digits, `._@-`, "
                                 "1–64 characters. Each id has its own profile and history.")]
    errors = {401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}

    fastapi_app = FastAPI(
        title="chatrec API", version=__version__,
        description="A conversational recommender over the catalogue: one-shot recommendations, chat turns per "
        "user (streamed as server-sent events when asked), feedback, profiles, forget-me, and an "
        "OpenAI-compatible `/v1/chat/completions`. Send the key as `Authorization: Bearer KEY` when the server "
        "has one (CHATREC_API_KEY).",
    )
    fastapi_app.state.api = api

    # -- errors: one shape, short messages, no stack traces --------------------------------------------
    @fastapi_app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kinds = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; GET /docs lists them"
        return JSONResponse(error_json(kinds.get(exc.status_code, "invalid_request"), message), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @fastapi_app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return JSONResponse(error_json("invalid_json", "the body is not valid JSON"), 400)
        details = [{"loc": [str(x) for x in p.get("loc", ())], "msg": str(p.get("msg", ""))[:200]}
                   for p in problems[:8]]  # never the input: it may be a megabyte, or a message
        text = "; ".join(f"{'.'.join(d['loc'][1:] or d['loc'])}: {d['msg']}" for d in details)
        return JSONResponse(error_json("invalid_request", text, details=details), 422)

    @fastapi_app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError):
        return JSONResponse(error_json("conflict", str(exc)), 409)

    @fastapi_app.exception_handler(StateError)
    async def state_error(request: Request, exc: StateError):
        log.error("state database: %s", exc)
        return JSONResponse(error_json("storage_error", "could not save to the state database; this change was "
                                       "not stored (is the server's disk full or read-only?)"), 503)

    @fastapi_app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # the guard logs it (type and frames only)
        return JSONResponse(error_json("internal_error", "internal error; the server log has the details"), 500)

    @fastapi_app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return JSONResponse(error_json("busy", "the language model is busy with other requests; retry shortly "
                                       "(or ask without an explanation: \"explain\": false)"), 503,
                            headers={"Retry-After": "5"})

    # -- routes --------------------------------------------------------------------------------------
    public = APIRouter(prefix="/v1")
    v1 = APIRouter(prefix="/v1", dependencies=_auth_dependencies(settings), responses=errors)

    @public.get("/health", response_model=HealthResponse, tags=["service"])
    async def health():
        """Liveness and load: what is loaded and how many calls run or wait in each lane. No key needed."""
        return {"status": "ok", "version": __version__, "api": "v1", "llm": api.llm_name,
                "items": len(application.catalogue.ids), "lanes": api.lanes()}

    @v1.post("/recommend", response_model=RecommendResponse, response_model_exclude_unset=True, tags=["recommend"])
    async def recommend(body: RecommendRequest):
        """Rank the catalogue for a text and tag choices: the `chatrec recommend --json` object. Nothing is
        stored; with `explain` and an LLM, the call waits for the model."""
        llm = api.needs_llm(body.explain)

        def run():
            reply = api.one_shots.recommend(body.text, body.like_tags, body.dislike_tags, body.k,
                                            body.filter_disliked, body.explain)
            return recommend_payload(reply)

        api.admit(llm)
        try:
            return JSONResponse(await api.run("llm" if llm else "turn", run))
        finally:
            api.release(llm)

    @v1.post("/users/{user}/turns", response_model=TurnResponse, tags=["chat"],
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "JSON, or with stream: `event: picks` (the turn without its "
                              "explanation), `event: line` per explanation line, `event: done`."}})
    async def turn(user: UserId, body: TurnRequest, request: Request):
        """One chat message of `user`: picks, what was understood, and the explanation. The turn is stored
        (history and profile) when the explanation ends."""
        stream = body.stream or "text/event-stream" in request.headers.get("accept", "")
        lane = "llm" if api.extract_with_llm else "turn"  # reading the message may use the model
        explain_lane = "llm" if (body.explain and api.model_loaded) else "quick"  # else: fact lines, then store
        llm = api.needs_llm(body.explain)
        api.admit(llm)
        released = False
        try:
            t0 = time.perf_counter()

            def start():
                reply = engine.turn(api.sessions.get(user), body.text)
                if not body.explain:
                    reply.explanation = None  # picks only: the turn is stored without an explanation
                return reply

            reply = await api.run(lane, start)
            if not stream:
                lines = await api.run(explain_lane, lambda: [line_json(x) for x in reply.lines()])
                return JSONResponse({**turn_head(user, reply), "explanation": lines,
                                     **turn_tail(reply, time.perf_counter() - t0)})
            released = True  # the stream gives the admission back when it ends, however it ends
            return StreamingResponse(Releasing(turn_events(user, reply, explain_lane, t0), lambda: api.release(llm)),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        finally:
            if not released:
                api.release(llm)

    async def lines_of(reply, lane: str):
        """The explanation's lines, each pulled on a worker thread of ``lane``; an SSE keepalive comment (None)
        while one takes long. If the client goes, the lines are closed (the turn is stored with what was read)."""
        it = reply.lines()
        done, task = False, None
        try:
            while True:
                task = asyncio.ensure_future(api.run(lane, next, it, None))
                while True:
                    finished, _ = await asyncio.wait({task}, timeout=KEEPALIVE_S)
                    if finished:
                        break
                    yield None
                line = task.result()
                if line is None:
                    done = True
                    return
                yield line
        finally:
            if not done:
                with anyio.CancelScope(shield=True):
                    if task is not None and not task.done():
                        await asyncio.wait({task})
                    await api.run("quick", it.close)

    async def turn_events(user: str, reply, lane: str, t0: float):
        try:
            yield sse("picks", turn_head(user, reply))
            async for line in lines_of(reply, lane):
                yield ": keepalive\n\n" if line is None else sse("line", line_json(line))
            yield sse("done", turn_tail(reply, time.perf_counter() - t0))
        except StateError as exc:
            log.error("state database: %s", exc)
            yield sse("error", error_json("storage_error", "could not save this turn to the state database"))
        except Exception as exc:  # noqa: BLE001 (the response has started: say so in the stream)
            _log_unhandled(exc, "turn stream", api.log_messages)
            yield sse("error", error_json("internal_error", "internal error; the server log has the details"))

    @v1.post("/users/{user}/feedback", response_model=FeedbackResponse, tags=["chat"],
             responses={409: {"model": ErrorResponse, "description": "No such pick in the current list."}})
    async def feedback(user: UserId, body: FeedbackRequest):
        """Feedback on a pick of the current list: the profile changes and the list re-ranks at once (no LLM)."""

        def run():
            session = api.sessions.get(user)
            with engine.locked(session):  # the list cannot change between finding the item and the event
                which = body.pick
                if which is None:  # by id: the engine reads a digit string as a pick number, and ids are digits
                    which = next((n for n, r in enumerate(session.shown, 1) if r.item.id == body.item_id), None)
                    if which is None:
                        raise EngineError(f"item {body.item_id!r} is not in the current list")
                reply = engine.feedback(session, which, body.event)
            return {"user": user, "header": reply.header, "understood": reply.understood,
                    "picks": picks_json(reply.recommendations), "seconds": round(reply.seconds, 4),
                    "rerank_seconds": None if reply.rerank_seconds is None else round(reply.rerank_seconds, 4)}

        return JSONResponse(await api.run("quick", run))

    @v1.get("/users/{user}/profile", response_model=ProfileResponse, tags=["profile"])
    async def profile(user: UserId):
        """What the engine holds about `user`: the hard wishes in force, liked and disliked tags and items,
        and the current picks."""

        def run():
            session = api.sessions.get(user)
            shown, view = engine.snapshot(session)
            return {"user": user, "understood": engine.understood(session.profile), "profile": view,
                    "picks": picks_json(shown)}

        return JSONResponse(await api.run("quick", run))

    @v1.get("/users/{user}/history", response_model=HistoryResponse, tags=["profile"])
    async def history(user: UserId, limit: Annotated[int, Query(ge=1, le=200)] = 20):
        """The user's most recent messages (theirs and chatrec's), oldest first."""

        def run():
            session = api.sessions.get(user)
            with engine.locked(session):
                messages = list(session.history[-limit:])
            return {"user": user, "messages": [{"role": r, "content": c} for r, c in messages]}

        return JSONResponse(await api.run("quick", run))

    @v1.delete("/users/{user}", response_model=ForgetResponse, tags=["profile"])
    async def forget(user: UserId):
        """Forget-me: delete every stored row of `user` (profile, events, messages) and start from nothing."""

        def run():
            engine.forget(api.sessions.get(user))
            api.sessions.drop(user)
            return {"user": user, "forgotten": True}

        return JSONResponse(await api.run("quick", run))

    # -- OpenAI-compatible --------------------------------------------------------------------------
    def openai_error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)

    @v1.get("/models", tags=["openai"])
    async def models():
        """The one model name chatrec answers to (OpenAI-compatible clients list models first)."""
        return {"object": "list", "data": [{"id": "chatrec", "object": "model", "created": 0, "owned_by": "chatrec"}]}

    @v1.post("/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatCompletionRequest):
        """An OpenAI-compatible chat endpoint: the last user message is the turn's text, `user` is the chatrec
        user id (required); chatrec keeps the conversation itself, so earlier messages are not read again.
        The answer is what the terminal chat shows: the header, the picks with their reasons, the explanation.
        `stream: true` gives `chat.completion.chunk` events ending with `data: [DONE]`."""
        if not body.user:
            return openai_error(400, "the `user` field is required: it is the chatrec user id whose profile "
                                "this conversation uses", "user")
        if not _USER_ID.match(body.user):
            return openai_error(400, "`user` must be 1-64 letters, digits or ._@- (starting with a letter or "
                                "digit)", "user")
        text = next((_content_text(m.content) for m in reversed(body.messages) if m.role == "user"), None)
        if text is None:
            return openai_error(400, "no message with role `user` in `messages`", "messages")
        user, model = body.user, body.model or "chatrec"
        lane = "llm" if api.extract_with_llm else "turn"
        explain_lane = "llm" if api.model_loaded else "quick"
        llm = api.model_loaded
        try:
            api.admit(llm)
        except Busy:
            return JSONResponse({"error": {"message": "the language model is busy; retry shortly",
                                           "type": "server_error",
                                           "param": None, "code": "busy"}}, 503, headers={"Retry-After": "5"})
        released = False
        try:
            reply = await api.run(lane, lambda: engine.turn(api.sessions.get(user), text))
            cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
            extra = {"chatrec": {"user": user, "kind": reply.kind, "understood": reply.understood,
                                 "items": [r.to_json() for r in reply.recommendations]}}
            head = picks_text(reply)
            with_lines = engine.explains_with_model
            if not body.stream:
                lines = await api.run(explain_lane, lambda: [x.text for x in reply.lines()])
                content = head + ("\n\n" + "\n".join(lines) if with_lines and lines else "")
                return JSONResponse({
                    "id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, **extra})

            def chunk(delta: dict, finish: str | None = None, **more) -> str:
                data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **more}
                return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

            async def events():
                try:
                    yield chunk({"role": "assistant", "content": head}, **extra)
                    first = True
                    async for line in lines_of(reply, explain_lane):
                        if line is None:
                            yield ": keepalive\n\n"
                        elif with_lines:
                            yield chunk({"content": ("\n\n" if first else "\n") + line.text})
                            first = False
                    yield chunk({}, "stop")
                    yield "data: [DONE]\n\n"
                except StateError as exc:
                    log.error("state database: %s", exc)
                    yield f"data: {json.dumps(error_json('storage_error', 'could not save this turn'))}\n\n"
                except Exception as exc:  # noqa: BLE001
                    _log_unhandled(exc, "chat completion stream", api.log_messages)
                    yield f"data: {json.dumps(error_json('internal_error', 'internal error'))}\n\n"

            released = True
            return StreamingResponse(Releasing(events(), lambda: api.release(llm)), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        finally:
            if not released:
                api.release(llm)

    fastapi_app.include_router(public)
    fastapi_app.include_router(v1)
    return Guard(fastapi_app, settings, api)


class Releasing:
    """A streamed body that calls ``release`` exactly once however the stream ends: at its end, on an error
    or a cancellation (the client went away), or when it is dropped without ever being started (the server
    may cancel a response before its first chunk, and a never-started generator runs no ``finally``)."""

    def __init__(self, body, release: Callable[[], None]):
        self.body, self._release = body, release

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.body.__anext__()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self):
        self.release()


def _content_text(content) -> str:
    """The text of an OpenAI message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content
                     if isinstance(part, dict) and part.get("type") == "text")


def _log_unhandled(exc: BaseException, where: str, with_text: bool) -> None:
    """An unexpected error in the log: its type and the code's frames; its message (which may quote the
    user's text) only with CHATREC_LOG_MESSAGES."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    detail = f": {exc}" if with_text else ""
    log.error("unhandled %s in %s%s\n%s", type(exc).__name__, where, detail, frames)


# -- the outer guard: body limit, content type, host check, request log, last-resort 500 ----------------
class Guard:
    """Plain ASGI middleware in front of FastAPI (so it holds whatever FastAPI version is installed).

    * a body larger than ``CHATREC_API_MAX_BODY`` is refused with 413, by its Content-Length before any
      byte is read, or as soon as a chunked body passes the limit;
    * a request with a body must say ``Content-Type: application/json`` (415): a browser page cannot post a
      "simple" cross-site form or text/plain request to a local server without a key;
    * without a key, only loopback Host headers are served (a DNS-rebinding page gets 421);
    * any exception that escapes is logged (type and frames) and answered with a plain 500;
    * the request log has method, route template, status and milliseconds: never a user id or a message,
      unless CHATREC_LOG_MESSAGES is on (then the user id too).
    """

    def __init__(self, app, settings, api: Api):
        self.app = app
        self.api = api
        self.limit = settings.api_max_body
        self.check_host = settings.api_key is None
        self.log_messages = settings.log_messages

    def __getattr__(self, name):  # .state, .routes ... of the FastAPI app, for tests and tools
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        started = {"status": None}

        async def send_(message):
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        try:
            refusal = self._refusal(scope, headers)
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(headers, receive)
                if refusal is None:
                    receive = _replay(body, receive)
            if refusal is not None:
                status, kind, message = refusal
                await _send_json(send_, status, error_json(kind, message))
            else:
                await self.app(scope, receive, send_)
        except Exception as exc:  # noqa: BLE001 (last resort: log it, answer plainly)
            _log_unhandled(exc, f"{scope['method']} {_route(scope)}", self.log_messages)
            if started["status"] is None:
                await _send_json(send_, 500, error_json("internal_error",
                                                        "internal error; the server log has the details"))
        finally:
            route = _route(scope)
            if self.log_messages and "path_params" in scope and "user" in scope["path_params"]:
                route += f" user={scope['path_params']['user']}"
            log.info("%s %s %s %.1fms", scope["method"], route, started["status"], (time.perf_counter() - t0) * 1000)

    def _refusal(self, scope, headers) -> tuple[int, str, str] | None:
        if self.check_host:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
            if not is_loopback(name):
                return 421, "misdirected", "this server has no API key, so it answers only requests addressed to " \
                    "127.0.0.1, localhost or [::1]"
        if scope["method"] in ("POST", "PUT", "PATCH"):
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    return 400, "invalid_request", "Content-Length is not a number"
                if int(length) > self.limit:
                    return 413, "too_large", f"the body is larger than {self.limit:,} bytes"
            has_body = (length is not None and int(length) > 0) or "chunked" in headers.get("transfer-encoding", "")
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if has_body and not (ctype == "application/json" or ctype.endswith("+json")):
                return 415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json"
        return None

    async def _read_body(self, headers, receive) -> tuple[bytes, tuple | None]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (400, "invalid_request", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return b"", (413, "too_large", f"the body is larger than {self.limit:,} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _route(scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "(no route)"


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would say it

    return replay


async def _send_json(send, status: int, payload: dict, headers: dict | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# -- running it ---------------------------------------------------------------------------------------
def serve(application, host: str = "127.0.0.1", port: int = DEFAULT_PORT, ready: Callable[[str], None] | None = None):
    """Serve the API on ``host:port`` (0: a free port) until interrupted. Binding errors raise OSError."""
    import socket

    import uvicorn

    settings = application.settings
    asgi = create_app(application, settings)
    application.one_shot.recommend("a warm-up", k=1)  # the reader's vocabulary and the behaviour model, now
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(asgi, log_config=None, access_log=False, server_header=False,
                            limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=5, lifespan="off",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    url = f"http://{'[' + host.strip('[]') + ']' if family == socket.AF_INET6 else host}:{bound}"
    if ready is not None:
        ready(url)
    server.run(sockets=[sock])
