"""Does the newest request lead the picks? A multi-turn probe of the chat engine.

    CHATREC_DATA_DIR=D python scripts/topic_switch.py [-v]

For each (first, second) pair of requests, a new session says the first, likes pick 1, then says the
second. The second list's top 5 is scored by the share of picks with a genre the second request asks for
("intent hit"), beside the same request in a fresh session; "overlap" is the share of the fresh session's
top 5 the in-session list keeps (below 1: the profile still tilts the picks), and a dislike said in the
first turn ("no romance") must still hold. Rules extraction, no LLM: the figures are deterministic.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from chatrec.app import App
from chatrec.settings import Settings

FIRST = ["something funny, no romance", "a dark crime thriller", "an animated movie for kids",
         "a romantic comedy for date night", "a gritty war film"]
SECOND = [("a documentary about music", {"Documentary"}), ("a western", {"Western"}),
          ("more like Alien", {"Sci-Fi", "Horror"}), ("a scary movie", {"Horror"}),
          ("an animated film for kids", {"Animation", "Children"}), ("a musical", {"Musical"}),
          ("more like Toy Story", {"Animation", "Children"}), ("a space adventure", {"Sci-Fi"})]


def main() -> None:
    from chatrec.adapters.sqlite_state import SqliteState

    with tempfile.TemporaryDirectory() as tmp:
        engine = App(Settings(llm="none"), state=SqliteState(Path(tmp) / "probe.sqlite3")).engine

        def hit(session, genres) -> float:
            return float(np.mean([bool(genres & set(r.item.genres)) for r in session.shown[:5]]))

        fresh, fresh_hit = {}, {}
        for request, genres in SECOND:
            s = engine.session(f"fresh {request}")
            engine.turn(s, request).text()
            fresh[request], fresh_hit[request] = {r.item.id for r in s.shown[:5]}, hit(s, genres)
        rows = []
        for n, (first, (second, genres)) in enumerate(itertools.product(FIRST, SECOND)):
            s = engine.session(f"user {n}")
            engine.turn(s, first).text()
            engine.feedback(s, 1, "like")
            engine.turn(s, second).text()
            rows.append({"first": first, "second": second, "hit": hit(s, genres),
                         "overlap": len(fresh[second] & {r.item.id for r in s.shown[:5]}) / 5,
                         "dislike_broken": "no romance" in first and any("Romance" in r.item.genres for r in s.shown),
                         "picks": [r.item.display_title for r in s.shown[:5]]})
    if "-v" in sys.argv:
        for r in rows:
            print(f"{r['first'][:30]:30s} → {r['second'][:26]:26s} hit {r['hit']:.1f} overlap {r['overlap']:.1f}  "
                  + "; ".join(r["picks"]))
    print(json.dumps({
        "pairs": len(rows),
        "intent_hit@5": round(float(np.mean([r["hit"] for r in rows])), 3),
        "fresh_intent_hit@5": round(float(np.mean(list(fresh_hit.values()))), 3),
        "overlap_with_fresh@5": round(float(np.mean([r["overlap"] for r in rows])), 3),
        "dislikes_kept": f"{sum(not r['dislike_broken'] for r in rows if 'no romance' in r['first'])}"
                         f"/{sum('no romance' in r['first'] for r in rows)}",
    }))


if __name__ == "__main__":
    main()
