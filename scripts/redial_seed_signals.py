"""The seed-signal rows of `chatrec tune --ablation` alone, on the 600 conversations (one prepare); 2026-12-06.

    CHATREC_DATA_DIR=D python scripts/redial_seed_signals.py
"""

import json, sys, time
from dataclasses import replace
from pathlib import Path
from chatrec.app import App
from chatrec.settings import Settings
from chatrec.eval import redial, tuning
t0 = time.perf_counter()
R = Path("../shared/data/redial")
settings = Settings(llm="none", use_tuned=False)
setup = redial.setup(App(settings), R / "movies_with_mentions.csv")
convs = [c for n in ("train_500.jsonl", "valid_100.jsonl") for c in redial.load_conversations(R / n)]
tuner = tuning.Tuner.for_setup(setup, settings, convs, 5)
base = settings.weights()
full = tuning.Variant("product", seed_signals=True)
prepared = tuner.prepare(full)
rows = [tuner.cross_validate(full, base, folds=prepared).summary()]
print(json.dumps(rows[-1] | {"per_fold": None}), flush=True)
for name, knobs in tuning.SIGNAL_ROWS[:3]:
    rows.append(tuner.cross_validate(replace(full, name=name, knobs=knobs), base, folds=prepared).summary())
    print(json.dumps(rows[-1] | {"per_fold": [f["weights"] for f in rows[-1]["per_fold"]]}), f"{time.perf_counter()-t0:.0f}s", flush=True)
