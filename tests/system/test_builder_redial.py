"""The bundled ReDial co-mention log: rebuilt byte for byte from ../shared, clear errors otherwise."""

from __future__ import annotations

import gzip
import json

import pytest

from chatrec.builders import redial as builder
from chatrec.eval.redial import BUNDLED_CO_MENTIONS
from conftest import SHARED


def test_rebuild_is_byte_identical(tmp_path):
    if not (SHARED / "redial").is_dir():
        pytest.skip("../shared/data/redial is not on this machine")
    out = tmp_path / "co.csv.gz"
    assert builder.main(["--source", str(SHARED), "--out", str(out)]) == 0
    assert out.read_bytes() == BUNDLED_CO_MENTIONS.read_bytes()


def test_rows_are_the_movies_each_conversation_names(tmp_path):
    (tmp_path / "redial").mkdir()
    conv = {"conversationId": "7", "movieMentions": {"1": "A (2000)", "2": "B (2001)", "3": ""},
            "messages": [{"text": "@1 and @2"}, {"text": "@1 again, @3 has no name, @9 unknown"}]}
    for name in builder.FILES:
        (tmp_path / "redial" / name).write_text(json.dumps(conv) + "\n")
    out = tmp_path / "o.csv.gz"
    assert builder.build(tmp_path, out) == 2
    assert gzip.decompress(out.read_bytes()).decode() == "conversationId,movieId\n7,1\n7,2\n"


def test_bad_source_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "o.csv.gz"
    assert builder.main(["--source", str(tmp_path), "--out", str(out)]) == 2
    assert "missing source file" in capsys.readouterr().err and not out.exists()
    (tmp_path / "redial").mkdir()
    for name in builder.FILES:
        (tmp_path / "redial" / name).write_text("{broken\n")
    assert builder.main(["--source", str(tmp_path), "--out", str(out)]) == 2
    assert "not a ReDial conversation" in capsys.readouterr().err and not out.exists()
