"""The web UI (Gradio): a thin renderer of :class:`chatrec.engine.ChatEngine`.

Each browser keeps a random session id in its localStorage (``gr.BrowserState``), so a reload
restores its profile and chat from SQLite, and two browsers never share a profile. A named
profile can be chosen instead. Turns that may call the local LLM go through one queue with a
concurrency limit of 1 (llama.cpp serves one call at a time anyway); feedback buttons never
call the LLM and have their own, wider lane, so the page stays responsive while a model talks.
"""

from __future__ import annotations

import html
import logging
import os
import threading
import uuid
from collections import OrderedDict

from chatrec.engine import ChatEngine, EngineError, Session
from chatrec.adapters.sqlite_state import StateError
from chatrec.llm.explain import reason

log = logging.getLogger(__name__)

CARDS = 5
SESSION_CACHE = 256

CSS = """
.card {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;}
.card-title {font-weight: 600; font-size: 1.05em;}
.card-tags {margin: 4px 0; font-size: 0.85em; opacity: 0.85;}
.card-tags span {display: inline-block; border-radius: 6px; padding: 0 6px; margin: 1px 2px;
  background: var(--background-fill-secondary);}
.bars {display: grid; grid-template-columns: 3.4em 1fr 2.6em; gap: 2px 6px; align-items: center;
  font-size: 0.8em;}
.bar {height: 8px; border-radius: 4px; background: var(--color-accent);}
.bar-bg {background: var(--background-fill-secondary); border-radius: 4px;}
.card-reason {font-size: 0.9em; margin-top: 4px;}
.card-people {font-size: 0.85em; opacity: 0.85;}
.card-fit {font-size: 0.85em; margin-top: 4px;}
"""


def card_html(n: int, rec, weights=None) -> str:
    """One pick: title, people, tags, a bar per score component (labelled with the weight applied), the
    constraints it meets, the reason."""
    it, b = rec.item, rec.breakdown
    w = weights or (0.5, 0.3, 0.2)
    tags = "".join(f"<span>{html.escape(t)}</span>" for t in it.all_tags[:6])
    bars = ""
    for label, weight, value, title in (("S", w[0], b.similarity, "similarity"), ("B", w[1], b.behaviour, "behaviour"),
                                        ("C", w[2], b.content, "content match")):
        bars += (f"<span title='{title}, weight {weight:g}'>{weight:g}·{label}</span><div class='bar-bg'><div class='bar' "
                 f"style='width:{max(0.0, min(value, 1.0)) * 100:.0f}%'></div></div><span>{value:.2f}</span>")
    penalty = f"<div class='card-reason'>penalty −{b.penalty:.2f}</div>" if b.penalty else ""
    people = "; ".join(part for part in (
        f"by {', '.join(it.directors[:2])}" if it.directors else "",
        f"with {', '.join(it.cast[:3])}" if it.cast else "",
        f"{it.runtime} min" if it.runtime else "") if part)
    people_html = f"<div class='card-people'>{html.escape(people)}</div>" if people else ""
    fit = ""
    if rec.fit.met:
        marks = " · ".join(f"{'✓' if ok else '✗'} {html.escape(label)}" for label, ok in rec.fit.met)
        lead = "closest: " if rec.fit.closest else ""
        fit = f"<div class='card-fit'>{lead}{marks}</div>"
    closest = "≈ " if rec.fit.closest else ""
    return (
        f"<div class='card' data-item-id='{html.escape(it.id)}'>"
        f"<div class='card-title'>{n}. {closest}{html.escape(it.display_title)}</div>{people_html}"
        f"<div class='card-tags'>{tags}</div><div class='bars'>{bars}</div>{penalty}{fit}"
        f"<div class='card-reason'>{html.escape(reason(rec))} · score {b.score:.2f}</div></div>"
    )


def profile_markdown(view: dict) -> str:
    def fmt(d):
        return ", ".join(f"{t} ({w:g})" for t, w in d.items()) if d else "none yet"

    asked = " · ".join(view["constraints"]) or "nothing in particular"
    return (
        f"**Asked for:** {asked}  \n"
        f"**Likes:** {fmt(view['liked_tags'])}  \n**Avoids:** {fmt(view['disliked_tags'])}  \n"
        f"**Liked:** {', '.join(view['liked_items']) or 'none yet'}  \n"
        f"**Disliked:** {', '.join(view['disliked_items']) or 'none yet'}  \n"
        f"**Watched:** {', '.join(view['watched_items']) or 'none yet'}"
    )


class Sessions:
    """Live engine sessions by id, restored from SQLite when not in memory (LRU-bounded)."""

    def __init__(self, engine: ChatEngine, capacity: int = SESSION_CACHE):
        self.engine = engine
        self.capacity = capacity
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sid: str) -> Session:
        with self._lock:
            session = self._items.get(sid)
            if session is not None:
                self._items.move_to_end(sid)
                return session
        session = self.engine.session(sid)
        with self._lock:
            self._items[sid] = session
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return session

    def drop(self, sid: str) -> None:
        with self._lock:
            self._items.pop(sid, None)


def build(engine: ChatEngine):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    sessions = Sessions(engine)

    def valid_sid(sid: str | None) -> str:
        return sid if sid and isinstance(sid, str) and len(sid) <= 120 else f"browser:{uuid.uuid4().hex}"

    w = engine.recommender.weights
    weights = (w.similarity, w.behaviour, w.content)

    def updates(session: Session):
        """The cards and the profile, read together under the engine's lock (a click may be changing them)."""
        shown, view = engine.snapshot(session)
        cards = []
        for i in range(CARDS):
            if i < len(shown):
                cards.append(gr.update(value=card_html(i + 1, shown[i], weights), visible=True))
            else:
                cards.append(gr.update(value="", visible=False))
        for i in range(CARDS):
            cards.append(gr.update(visible=i < len(shown)))
        removable = list(view["constraints"]) + list(view["liked_tags"]) + list(view["disliked_tags"])
        return [*cards, profile_markdown(view), gr.update(choices=removable, value=None)]

    def history_messages(session: Session) -> list[dict]:
        return [{"role": r, "content": c} for r, c in session.history[-40:] if c]

    def on_load(sid):
        sid = valid_sid(sid)
        session = sessions.get(sid)
        name = "" if sid.startswith("browser:") else sid
        ready = gr.update(interactive=True)
        return [sid, history_messages(session), name, *updates(session), ready, ready]

    def on_send(message, chat, sid):
        sid = valid_sid(sid)
        message = (message or "").strip()
        session = sessions.get(sid)
        if not message:
            yield [chat, "", *updates(session)]
            return
        try:
            reply = engine.turn(session, message)
        except StateError as exc:  # e.g. a full disk: say so plainly, keep the page as it was
            gr.Warning(str(exc))
            yield [chat, message, *updates(session)]
            return
        chat = list(chat or []) + [{"role": "user", "content": message}]
        picks = "\n".join(f"{n}. {'≈ ' if r.fit.closest else ''}{r.item.display_title} — {reason(r)}"
                          for n, r in enumerate(reply.recommendations, 1))
        lead = f"{reply.header}\n\n{picks}" if picks else reply.header
        for note in reply.notes:
            lead = f"_{note}_\n\n{lead}"
        chat.append({"role": "assistant", "content": lead})
        yield [chat, "", *updates(session)]
        unchanged = [*[gr.update()] * (2 * CARDS), gr.update(), gr.update()]  # the cards and profile stay
        shown: list[str] = []
        try:
            # each explanation line appears once, after it passed the review; feedback clicks meanwhile
            # re-rank at once (the engine stores the turn when the lines end)
            for line in reply.lines():
                if engine.explains_with_model:
                    shown.append(line.text)
                    chat[-1] = {"role": "assistant", "content": lead + "\n\n" + "\n".join(shown)}
                    yield [chat, "", *unchanged]
        except StateError as exc:  # storing the finished turn failed: the picks stay, the user is told
            gr.Warning(str(exc))
        # The last update is what API clients receive, so it carries the cards as they are now: a feedback
        # click made meanwhile must not see its replaced list put back.
        yield [chat, "", *updates(session)]

    def on_event(i: int, event: str):
        def handler(sid):
            session = sessions.get(valid_sid(sid))
            try:
                engine.feedback(session, i + 1, event)
            except (EngineError, StateError) as exc:
                gr.Warning(str(exc))
            return updates(session)

        return handler

    def on_remove(what, sid):
        session = sessions.get(valid_sid(sid))
        if what:
            try:
                engine.remove(session, what)
            except EngineError as exc:
                gr.Warning(str(exc))
        return updates(session)

    def on_forget(sid):
        old = valid_sid(sid)
        session = sessions.get(old)
        engine.forget(session)
        sessions.drop(old)
        new = f"browser:{uuid.uuid4().hex}"
        fresh = sessions.get(new)
        gr.Info("Forgot everything stored about this profile.")
        return [new, [], "", *updates(fresh)]

    def on_name(name, sid):
        name = (name or "").strip()
        # A named profile is the same user id as `chatrec chat --user NAME`.
        new = name[:80] if name and not name.startswith("browser:") else f"browser:{uuid.uuid4().hex}"
        session = sessions.get(new)
        return [new, history_messages(session), *updates(session)]

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: works offline
    with gr.Blocks(title="chatrec") as demo:
        sid_state = gr.BrowserState("", storage_key="chatrec_session")
        gr.Markdown("## chatrec — tell me what you like")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=460, label="Chat")
                with gr.Row():
                    # disabled until the page has its session id (on_load): a message typed before that went
                    # to a throwaway session, and the next one started from an empty profile
                    box = gr.Textbox(placeholder='e.g. "something funny, no romance" or "more like Alien"',
                                     show_label=False, scale=5, elem_id="message", autofocus=True,
                                     interactive=False)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send", interactive=False)
            with gr.Column(scale=2):
                gr.Markdown("### Picks")
                cards, buttons = [], []
                for i in range(CARDS):
                    with gr.Group():
                        cards.append(gr.HTML("", visible=False, elem_id=f"card-{i + 1}"))
                        with gr.Row(visible=False) as row:
                            like = gr.Button("Like", size="sm", elem_id=f"like-{i + 1}")
                            dislike = gr.Button("Dislike", size="sm", elem_id=f"dislike-{i + 1}")
                            watched = gr.Button("Watched", size="sm", elem_id=f"watched-{i + 1}")
                    buttons.append((row, like, dislike, watched))
                gr.Markdown("### Your profile")
                profile_md = gr.Markdown("none yet", elem_id="profile")
                with gr.Row():
                    tag_pick = gr.Dropdown(choices=[], label="Take back (a constraint or a tag)", scale=3,
                                           elem_id="tag-pick")
                    remove = gr.Button("Remove", size="sm", scale=1, elem_id="remove-tag")
                with gr.Row():
                    name_box = gr.Textbox(label="Named profile (optional)", scale=3, elem_id="profile-name")
                    use_name = gr.Button("Use", size="sm", scale=1, elem_id="use-profile")
                forget = gr.Button("Forget me", variant="stop", size="sm", elem_id="forget")

        rows = [b[0] for b in buttons]
        card_outputs = [*cards, *rows]
        profile_outputs = [profile_md, tag_pick]
        llm_lane = {"concurrency_limit": 1 if engine.explains_with_model else 4, "concurrency_id": "turn"}

        # Explicit api_names give scripted clients (gradio_client, or the HTTP API as in
        # tests/test_concurrency.py) stable endpoints: /load, /send, /like_N, ... not /handler_17.
        demo.load(on_load, [sid_state], [sid_state, chatbot, name_box, *card_outputs, *profile_outputs, box, send],
                  api_name="load")
        for trigger, api_name in ((box.submit, "submit"), (send.click, "send")):
            trigger(on_send, [box, chatbot, sid_state], [chatbot, box, *card_outputs, *profile_outputs],
                    api_name=api_name, **llm_lane)
        for i, (_, like, dislike, watched) in enumerate(buttons):
            for button, event in ((like, "like"), (dislike, "dislike"), (watched, "watched")):
                button.click(on_event(i, event), [sid_state], [*card_outputs, *profile_outputs],
                             concurrency_limit=8, concurrency_id="feedback", api_name=f"{event}_{i + 1}")
        remove.click(on_remove, [tag_pick, sid_state], [*card_outputs, *profile_outputs], api_name="remove_tag")
        use_name.click(on_name, [name_box, sid_state], [sid_state, chatbot, *card_outputs, *profile_outputs],
                       api_name="use_profile")
        forget.click(on_forget, [sid_state], [sid_state, chatbot, name_box, *card_outputs, *profile_outputs],
                     api_name="forget")
    demo.queue(max_size=64)
    return demo, theme


def launch(engine: ChatEngine, host: str = "127.0.0.1", port: int = 7860) -> None:
    demo, theme = build(engine)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the UI is reachable from other machines on %s:%s; it has no login", host, port)
    print(f"chatrec UI on http://{host}:{port}", flush=True)
    demo.launch(server_name=host, server_port=port or None, share=False, show_error=False, quiet=True,
                theme=theme, css=CSS, footer_links=[])
