"""Configuration faults through the real CLI: each must end with a non-zero exit code and one clear
`error:` line on stderr that says what to do, never a traceback."""

from __future__ import annotations

import shutil

import pytest

from chatrec.adapters.embedder import default_model_path
from conftest import private_data_dir, run_cli

pytestmark = pytest.mark.slow


def one_clear_line(proc, *needles: str) -> str:
    assert proc.returncode not in (0, None), (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def data_dir(default_data_dir, tmp_path):
    return private_data_dir(default_data_dir, tmp_path / "data")


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A different sentence-transformers folder (a copy under another name: a different model to the index)."""
    target = tmp_path_factory.mktemp("models") / "paraphrase-mini"
    shutil.copytree(default_model_path(), target)
    return target


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [["recommend", "a space adventure"], ["chat", "--llm", "none"]])
def test_embedding_model_mismatch_says_to_reindex(data_dir, other_model, command):
    proc = run_cli(*command, env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_EMBEDDING_MODEL": str(other_model)},
                   input="/quit\n", timeout=100)
    one_clear_line(proc, "all-MiniLM-L6-v2", "paraphrase-mini", "chatrec index --rebuild")


@pytest.mark.timeout(120)
def test_embedding_backend_mismatch_int8_says_to_reindex(data_dir):
    proc = run_cli("recommend", "a space adventure",
                   env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_EMBEDDING_BACKEND": "onnx-int8"}, timeout=100)
    one_clear_line(proc, "all-MiniLM-L6-v2+int8", "chatrec index --rebuild")


@pytest.mark.timeout(60)
def test_unknown_setting(data_dir):
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_TYPO": "1"}, timeout=50)
    one_clear_line(proc, "unknown setting CHATREC_TYPO")
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_W_SIMILARTY": "0.4"}, timeout=50)
    one_clear_line(proc, "CHATREC_W_SIMILARTY", "did you mean CHATREC_W_SIMILARITY")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,value,needle", [
    ("CHATREC_W_SIMILARITY", "-1", "CHATREC_W_SIMILARITY"),
    ("CHATREC_LLM", "gpt5", "CHATREC_LLM"),
    ("CHATREC_CANDIDATES", "lots", "CHATREC_CANDIDATES"),
])
def test_invalid_value(data_dir, name, value, needle):
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(data_dir), name: value}, timeout=50)
    one_clear_line(proc, "invalid setting", needle)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [["recommend", "x"], ["chat", "--llm", "none"]])
def test_missing_catalogue_on_a_fresh_data_dir(tmp_path, command):
    proc = run_cli(*command, env={"CHATREC_DATA_DIR": str(tmp_path / "fresh"), "CHATREC_CATALOG": "/nope.jsonl"},
                   input="/quit\n", timeout=50)
    one_clear_line(proc, "/nope.jsonl", "file not found")
