"""The date filter: Settings.since/until honoured by retrieval, for the CLI, app and evaluation."""

import json
import os
import subprocess
import sys

import pytest

from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.engine import Engine
from tests.conftest import ROOT

DOCS = [
    {"id": "old", "date": "2024-03-01", "text": "بارش برف در تهران مدارس را تعطیل کرد. برف سنگین بود."},
    {"id": "new", "date": "2025-06-14", "text": "بارش برف در تبریز مدارس را تعطیل کرد. برف سنگین بود و جاده بسته شد."},
    {"id": "undated", "text": "بارش برف در مشهد مدارس را تعطیل کرد. برف سنگین آمد."},
]


@pytest.fixture
def dated(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "news.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in DOCS), "utf-8")
    s = Settings(project_root=tmp_path, model="hash-256", abstain_threshold=-1e9)
    Engine(s, HashEmbedder(256)).build()
    return s


def _docs(settings, mode=None):
    engine = Engine(settings, HashEmbedder(256))
    return {h.passage.doc_id for h in engine.ask("بارش برف مدارس تعطیل", mode=mode).hits}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_filter_keeps_documents_in_range_and_drops_undated_ones(dated, mode):
    assert _docs(dated, mode) == {"old", "new", "undated"}
    assert _docs(dated.replace(since="2025-01-01"), mode) == {"new"}
    assert _docs(dated.replace(until="2024-12-31"), mode) == {"old"}
    assert _docs(dated.replace(since="2024-03-01", until="2025-06-14"), mode) == {"old", "new"}  # inclusive
    assert _docs(dated.replace(since="2026-01-01"), mode) == set()


def test_settings_check_the_dates():
    assert Settings(since="2025-01-01T10:00:00").since == "2025-01-01"
    assert Settings(since="").since is None
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Settings(since="last week")
    with pytest.raises(ValueError, match="after"):
        Settings(since="2025-02-01", until="2025-01-01")


def test_cli_since_flag(dated):
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAG_MODEL="hash-256", RAG_ABSTAIN_THRESHOLD="-1e9")
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "بارش برف مدارس تعطیل", "--json", "--since",
                          "2025-01-01", "--index", str(dated.index_dir)], capture_output=True, text=True, env=env,
                         cwd=dated.project_root, timeout=120)
    assert out.returncode == 0, out.stderr
    ans = json.loads(out.stdout)
    assert {p["doc_id"] for p in ans["passages"]} == {"new"}
    bad = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "x", "--since", "soon"], capture_output=True,
                         text=True, env=env, cwd=dated.project_root, timeout=120)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
