"""Score every extraction mode (rules, llm, union, fill) on labelled sets with one LLM call per
message, so the combination is chosen by measurement. Usage:
    python scripts/extraction_modes.py CASES.jsonl [CASES.jsonl ...]
Prints one JSON line per (file, mode) and the extraction latency percentiles."""

import json
import sys
import time

import numpy as np

from chatrec.app import App
from chatrec.eval.extraction import load_cases
from chatrec.llm.backends import LLMError
from chatrec.llm.extract import LLMExtractor, micro_f1
from chatrec.settings import Settings


def main(paths):
    app = App(Settings(llm="local", extractor="rules"))
    app.ensure_index()
    rules_only = app.extractor
    llm = LLMExtractor(app.load_model(required=True))
    times = []
    for path in paths:
        cases = load_cases(path)
        rows = []
        for case in cases:
            prefs = rules_only.extract(case["message"])
            t0 = time.perf_counter()
            try:
                ans = llm.extract(case["message"])
            except LLMError:
                ans = None
            times.append(time.perf_counter() - t0)
            rows.append((case, prefs, ans))
        for mode in ("rules", "llm", "union", "fill"):
            pairs = []
            for case, prefs, ans in rows:
                gold = {(g, "+") for g in case["likes"]} | {(g, "-") for g in case["dislikes"]}
                rg = {(g, "+") for g in prefs.genres("+")} | {(g, "-") for g in prefs.genres("-")}
                lg = set() if ans is None else {(g, "+") for g in ans.likes} | {(g, "-") for g in ans.dislikes if g not in ans.likes}
                if mode == "rules":
                    pred = rg
                elif mode == "llm":
                    pred = lg
                elif mode == "union":
                    rule_genres = {g for g, _ in rg}
                    pred = rg | {(g, p) for g, p in lg if g not in rule_genres}
                else:
                    pred = rg if rg else lg
                pairs.append((gold, pred))
            print(json.dumps({"file": path, "mode": mode, **micro_f1(pairs)}))
    ms = np.array(times) * 1000
    print(json.dumps({"llm_extraction_ms": {"p50": round(float(np.percentile(ms, 50))), "p95": round(float(np.percentile(ms, 95)))}, "n": len(times)}))


if __name__ == "__main__":
    main(sys.argv[1:])
