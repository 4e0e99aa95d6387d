"""Explanation strategies measured on real picks (issue #21).

For ~20 realistic requests (chatrec.bench.queries() plus a few written out), the real recommender's top 5
picks (rules extraction, as the chat's default), explained by each strategy with one model process:

* ``baseline``: the explainer before issue #21 (one call for the top 3 picks from their reason lines, reviewed
  after the whole answer), loaded from git (``--baseline-rev``);
* ``free``: one short call per pick from its own facts, unconstrained, each line reviewed before it is shown;
* ``grammar``: the same prompt with a per-pick GBNF grammar (title first, only that pick's fact words and the
  connectives), greedy;
* ``facts``: no model: each pick's fact line.

Prints per strategy: lines written / kept / restating the reason, withdrawn, first visible line and whole call
p50/p95, and sample replies; ``--out FILE`` writes everything as JSON.

    HF_HUB_OFFLINE=1 CHATREC_DATA_DIR=/tmp/explain-data python scripts/explanation_study.py --out /tmp/study.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatrec.bench import queries  # noqa: E402
from chatrec.llm.explain import (  # noqa: E402
    ExplainContext, Explainer, Outcome, _Facts, _units, figures, liked_facts, restates_reason,
)

EXTRA = [
    "I want a scary sci-fi movie, nothing too gory, something like Alien",
    "a heist movie with a clever twist, I loved Ocean's Eleven",
    "something romantic set in Paris",
    "a war movie that is not too long",
    "animated movie for kids about animals",
    "a slow sad drama about family",
]


def requests(n: int) -> list[str]:
    return EXTRA + queries(max(n - len(EXTRA), 0))


def context_for(text: str, prefs, rec) -> ExplainContext:
    cat = rec.catalogue
    liked = [m for m in prefs.items if m.sentiment > 0 and not getattr(m, "unseen", False)]
    items = cat.items(cat.rows_of(m.id for m in liked))
    w = rec.weights
    return ExplainContext(request=text, liked_titles=tuple(it.display_title for it in items),
                          disliked=tuple(prefs.disliked_tags), weights=(w.similarity, w.behaviour, w.content),
                          liked_facts=liked_facts(items))


def old_module(rev: str):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:chatrec/llm/explain.py"], check=True,
                            capture_output=True, text=True).stdout
    mod = types.ModuleType("chatrec_llm_explain_baseline")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(source, "baseline_explain.py", "exec"), mod.__dict__)  # noqa: S102  (our own file from git)
    return mod


class _Tap:
    """A backend wrapper that keeps the raw text of the last stream (the model's own answer)."""

    def __init__(self, backend):
        self.backend, self.raw = backend, ""

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def stream(self, *args, **kwargs):
        self.raw = ""
        for piece in self.backend.stream(*args, **kwargs):
            self.raw += piece
            yield piece


def run_baseline(mod, backend, titles, recs, ctx: ExplainContext) -> tuple[Outcome, str]:
    """The old explainer, counted as the new Outcome counts: each unit of the model's own answer (before the
    old review appended or replaced lines) is a line written; kept = it passed the old review unchanged. The
    old flow streamed raw tokens and reviewed only at the end, so its first line *after review* came at the end
    of the call (first_visible_s); its first raw token is kept as first_model_line_s."""
    tap = _Tap(backend)
    ex = mod.Explainer(tap, titles)
    out = Outcome(strategy="baseline")
    t0 = time.perf_counter()
    text = ""
    for chunk in ex.stream(recs, ctx.request):
        if out.first_model_line_s is None:
            out.first_model_line_s = time.perf_counter() - t0
        text = chunk.text if chunk.kind == "replace" else text + chunk.text
    out.seconds = out.first_visible_s = time.perf_counter() - t0
    out.fallback_reason = ex.last_fallback_reason
    raw = "".join(mod.strip_markers(iter([tap.raw])))
    units = _units(raw)
    facts = _Facts(recs)
    out.lines_written = len(units)
    out.withdrawn = ex.last_fallback_reason is not None
    out.repairs = tuple(ex.last_repairs) or ((ex.last_fallback_reason,) if ex.last_fallback_reason else ())
    if not out.withdrawn:
        for u in units:
            pick, problem = facts.attribute(u)
            if problem is None and ex._off_list(u, recs) is None and facts.problem(u, pick) is None:
                out.lines_kept += 1
                out.lines_restating_reason += pick is not None and restates_reason(u, recs[pick])
    out.lines_shown = len(_units(text))
    return out, text


def machine_speed(backend) -> dict:
    """The local model's speed right now (the machine is shared): prompt tokens/s on a fresh 200-token
    prompt, generated tokens/s over 32 greedy tokens."""
    model = getattr(backend, "model", None)
    if model is None:
        return {}
    with backend.lock:
        prompt = model.tokenize(("The film follows a crew in space. " * 40).encode(), add_bos=True)[:200]
        model.reset()
        t0 = time.perf_counter()
        model.eval(prompt)
        read = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.create_completion("Once upon a time", max_tokens=32, temperature=0.0)
        gen = time.perf_counter() - t0
        model.reset()
    n = out["usage"]["completion_tokens"]
    return {"prompt_tokens_per_s": round(len(prompt) / read, 1), "generated_tokens_per_s": round(n / gen, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--strategies", default="baseline,free,grammar,facts")
    ap.add_argument("--baseline-rev", default="85e47b8")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--no-audit", action="store_true", help="skip the grammar audit (minutes on this machine)")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from chatrec.app import App
    from chatrec.recommend.query import Query
    from chatrec.settings import Settings

    settings = Settings()
    app = App(settings)
    rec, extractor = app.recommender, app.extractor
    titles = app.vocabulary.titles
    turns = []
    for text in requests(args.n):
        prefs = extractor.extract(text)
        recs = rec.recommend(Query.from_preferences(prefs, text, {}, {}), k=5).items
        turns.append((text, recs, context_for(text, prefs, rec)))
    t0 = time.perf_counter()
    backend = app.load_model(required=True)
    load_s = time.perf_counter() - t0
    print(f"model: {backend.info.name}:{backend.info.model} (loaded in {load_s:.2f} s), {len(turns)} requests,"
          f" load average {os.getloadavg()[0]:.2f}", flush=True)
    strategies = args.strategies.split(",")
    runners = {}
    for strategy in strategies:
        if strategy == "baseline":
            mod = old_module(args.baseline_rev)
            runners[strategy] = lambda recs, ctx, mod=mod: run_baseline(mod, backend, titles, recs, ctx)
        else:
            name, _, opts = strategy.partition(":")
            options = dict(o.split("=") for o in opts.split("+") if o)
            options = {k: (v == "1" if k == "example" else int(v) if v.isdigit() else v) for k, v in options.items()}
            ex = Explainer(None if name == "facts" else backend, titles, strategy=name, **options)

            def run(recs, ctx, ex=ex):
                e = ex.explain(recs, ctx)
                return e.outcome, e.text()
            runners[strategy] = run
    # Interleaved: request by request, each strategy in a rotating order, each measured call preceded by an
    # unmeasured one of the same strategy on another request, so llama.cpp's cached prompt prefix is that
    # strategy's own fixed prompt (as in a chat that uses one strategy), and a busy spell of this shared
    # machine falls on every strategy alike.
    warm_recs, warm_ctx = turns[-1][1][:1], ExplainContext(request="warm-up: a quiet film about the sea")
    per: dict[str, list] = {s: [] for s in strategies}
    speeds = [machine_speed(backend)]
    print(f"speed: {speeds[-1]}", flush=True)
    for i, (text, recs, ctx) in enumerate(turns):
        order = strategies[i % len(strategies):] + strategies[: i % len(strategies)]
        for strategy in order:
            runners[strategy](warm_recs, warm_ctx)
            out, reply = runners[strategy](recs, ctx)
            per[strategy].append((text, reply, out))
        if i % 5 == 4:
            speeds.append(machine_speed(backend))
            print(f"{i + 1} requests; speed: {speeds[-1]}; load {os.getloadavg()[0]:.2f}", flush=True)
    results = {"machine_speed": speeds}
    for strategy in strategies:
        replies = per[strategy]
        outcomes = [o for _, _, o in replies]
        fig = figures(outcomes)
        fig["prompt_tokens"] = sum(o.prompt_tokens for o in outcomes)
        fig["completion_tokens"] = sum(o.completion_tokens for o in outcomes)
        fig["model_calls"] = sum(o.model_calls for o in outcomes)
        fig["lines_shown"] = sum(o.lines_shown for o in outcomes)
        fig["empty_replies"] = sum(not r.strip() for _, r, _ in replies)
        results[strategy] = {"figures": fig, "replies": [
            {"request": t, "reply": r, "problems": [str(p) for p in o.repairs], "fallback": o.fallback_reason,
             "first_visible_s": o.first_visible_s, "seconds": o.seconds} for t, r, o in replies]}
        print(f"\n== {strategy}: lines written {fig['explanation_lines']}, kept {fig['explanation_lines_kept']}, "
              f"restating {fig['explanation_lines_restating_reason']}, withdrawn {fig['explanations_withdrawn']}/"
              f"{len(outcomes)}; lines shown {fig['lines_shown']}, empty replies {fig['empty_replies']}; "
              f"first visible line {fig['explain_first_visible_token']}; first model line "
              f"{fig['explain_first_model_line']}; whole call {fig['explain_whole_call']}; problems "
              f"{fig['explanation_problems']}; tokens {fig['prompt_tokens']}+{fig['completion_tokens']} in "
              f"{fig['model_calls']} calls", flush=True)
        for t, r, o in replies[: args.samples]:
            print(f"-- {t}\n{r}")
    if args.no_audit:
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        return
    # the phrase grammar's whole language against the review, for every pick it would explain (no model)
    from chatrec.llm.explain import phrase_grammar, pick_facts
    from chatrec.llm.grammar_audit import lines as grammar_lines

    audit_ex = Explainer(backend, titles)
    n_lines = n_bad = 0
    bad = []
    for text, recs, ctx in turns:
        for p in range(len(recs)):  # every pick that could get a line
            facts = pick_facts(recs[p], audit_ex.sentences, audit_ex.keywords, audit_ex.fact_words)
            if not facts.about:
                continue
            for line in grammar_lines(phrase_grammar(recs, p, facts, ctx)):
                n_lines += 1
                problem = audit_ex.review_line(line, recs, p, ctx)
                if problem is not None:
                    n_bad += 1
                    bad.append((line, str(problem)))
    results["grammar_audit"] = {"lines": n_lines, "failing_review": n_bad, "examples": bad[:10]}
    print(f"\ngrammar audit: {n_lines} lines the phrase grammar allows for these picks, {n_bad} fail the review",
          bad[:5])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
