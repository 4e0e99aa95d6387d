"""The core and the rule reader import no database, vector index, embedder, LLM client or UI."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

HEAVY = ("chromadb", "torch", "sentence_transformers", "onnxruntime", "llama_cpp", "openai", "langchain_core",
         "langchain_openai", "gradio", "fastapi", "sqlite3", "chatrec.adapters", "chatrec.app", "chatrec.engine",
         "chatrec.llm", "chatrec.recommend", "chatrec.catalogue")


def test_core_and_reading_import_nothing_heavy():
    code = (
        "import sys\n"
        "import chatrec.core.items, chatrec.core.scoring, chatrec.core.constraints, chatrec.core.preferences\n"
        "import chatrec.core.profile, chatrec.core.dialogue\n"
        "import chatrec.reading.lexicon, chatrec.reading.titles, chatrec.reading.people, chatrec.reading.wishes\n"
        "import chatrec.reading.rules\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(k for k in sys.modules if k.startswith(heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
