"""The terminal chat: a thin renderer of :class:`chatrec.engine.ChatEngine`.

Input uses the standard library's ``readline`` (line editing, per-user history file) rather than
prompt_toolkit: prompt_toolkit's cursor-position queries and redraws make scripted pseudo-terminal
sessions fragile, and plain ``input()`` with readline gives editing and history without them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from chatrec.engine import ChatEngine, EngineError, Reply
from chatrec.llm.explain import reason

HELP = """Tell me what you like in your own words, e.g. "something funny, no romance" or "more like Alien".
Commands (N is a pick's number):
  /like N      /dislike N      /watched N      /skip N   give feedback; the list re-ranks at once
  /why N       the full score breakdown of pick N
  /more        more picks for the same request
  /profile     what you asked for (people, years, genres...), your liked and disliked tags and items
  /remove X    take something back: a constraint ("/remove with Tom Hanks", "/remove 1990–1999") or a tag
  /reset       start over (empty profile)
  /forget      delete everything stored about you
  /help        this text
  /quit        leave (Ctrl-D and Ctrl-C work too)"""

EVENT_COMMANDS = {"/like": "like", "/dislike": "dislike", "/watched": "watched", "/skip": "skip"}


class Repl:
    def __init__(self, engine: ChatEngine, user: str, out: Console | None = None, history_dir: Path | None = None):
        self.engine = engine
        self.user = user
        self.out = out or Console(highlight=False, soft_wrap=True)
        self.history_file = (history_dir / f"{_safe_name(user)}.history") if history_dir else None
        self.session = engine.session(user)

    # -- line editing ------------------------------------------------------------------------------
    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # not on every platform; input() still works
            return
        readline.set_history_length(500)
        if self.history_file and self.history_file.is_file():
            try:
                readline.read_history_file(self.history_file)
            except OSError:
                pass

    def _save_history(self) -> None:
        if not self.history_file:
            return
        try:
            import readline

            if readline.get_current_history_length() == 0:
                return  # nothing typed (or all forgotten): leave no file behind
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(self.history_file)
        except (ImportError, OSError):
            pass

    # -- loop --------------------------------------------------------------------------------------
    def run(self) -> int:
        self._setup_readline()
        reconfigure = getattr(sys.stdin, "reconfigure", None)
        if reconfigure is not None:  # invalid UTF-8 typed or piped in must not end the session
            reconfigure(errors="replace")
        self.out.print("chatrec: tell me what you like; /help lists the commands.")
        view = self.engine.profile_view(self.session)
        if any(view.values()):
            likes = ", ".join(list(view["liked_tags"])[:5]) or "no tags yet"
            self.out.print(f"Welcome back, {escape(self.user)}: your profile is restored ({escape(likes)}).")
            if self.session.shown:
                self._print_picks(self.session.shown)
        while True:
            try:
                line = input("> ")
            except EOFError:
                self.out.print()
                break
            except KeyboardInterrupt:
                self.out.print()
                break
            line = line.strip()
            if not line:
                continue
            try:
                if not self.handle(line):
                    break
            except KeyboardInterrupt:
                self.out.print("\n(interrupted)")
            except EngineError as exc:
                self.out.print(f"[yellow]{escape(str(exc))}[/]")
        self._save_history()
        self.out.print("Bye.")
        return 0

    def handle(self, line: str) -> bool:
        """Carry out one input line; False means leave."""
        if not line.startswith("/"):
            self.render(self.engine.turn(self.session, line))
            return True
        command, _, arg = line.partition(" ")
        command, arg = command.lower(), arg.strip()
        if command in ("/quit", "/exit", "/q"):
            return False
        if command == "/help":
            self.out.print(HELP, markup=False)
        elif command in EVENT_COMMANDS:
            self.render(self.engine.feedback(self.session, self._number(arg), EVENT_COMMANDS[command]))
        elif command == "/why":
            self.out.print(self.engine.why(self.session, self._number(arg)), markup=False)
        elif command == "/more":
            self.render(self.engine.more(self.session))
        elif command == "/profile":
            self._print_profile()
        elif command == "/remove":
            if not arg:
                raise EngineError("usage: /remove X, where X is a constraint or a tag /profile lists")
            self.render(self.engine.remove(self.session, arg))
        elif command == "/reset":
            self.engine.reset(self.session)
            self.out.print("Profile cleared. What are you in the mood for?")
        elif command == "/forget":
            self.engine.forget(self.session)
            if self.history_file:
                self.history_file.unlink(missing_ok=True)
                try:
                    import readline

                    readline.clear_history()
                except ImportError:
                    pass
            self.out.print(f"Forgot everything stored about {escape(self.user)}.")
        else:
            raise EngineError(f"unknown command {command}; /help lists them")
        return True

    @staticmethod
    def _number(arg: str) -> int:
        if not arg.isdigit():
            raise EngineError("give the pick's number, e.g. /like 2")
        return int(arg)

    # -- rendering ---------------------------------------------------------------------------------
    def render(self, reply: Reply) -> None:
        for note in reply.notes:
            self.out.print(f"[yellow]{escape(note)}[/]")
        self.out.print(escape(reply.header))
        self._print_picks(reply.recommendations)
        if not self.engine.explains_with_model:
            reply.text()  # the reasons above are the picks' facts; just finish the turn
            return
        first = True
        for line in reply.lines():  # each line appears once, after it passed the review
            if first:
                self.out.print()
                first = False
            self.out.print(escape(line.text))
        sys.stdout.flush()

    def _print_picks(self, recs) -> None:
        for n, r in enumerate(recs, 1):
            mark = "≈ " if r.fit.closest else ""
            self.out.print(f"{n}. {mark}{escape(r.item.display_title)} — {escape(reason(r))}")

    def _print_profile(self) -> None:
        view = self.engine.profile_view(self.session)
        fmt = lambda d: ", ".join(f"{t} ({w:g})" for t, w in d.items()) or "none"  # noqa: E731
        self.out.print(f"asked for: {escape(' · '.join(view['constraints']) or 'nothing in particular')}")
        self.out.print(f"liked tags: {escape(fmt(view['liked_tags']))}")
        self.out.print(f"disliked tags: {escape(fmt(view['disliked_tags']))}")
        self.out.print(f"liked items: {escape(', '.join(view['liked_items']) or 'none')}")
        self.out.print(f"disliked items: {escape(', '.join(view['disliked_items']) or 'none')}")
        self.out.print(f"watched: {escape(', '.join(view['watched_items']) or 'none')}")


def _safe_name(user: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in user)[:80] or "default"
