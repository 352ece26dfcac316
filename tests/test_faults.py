"""Faults: a killed build, an unwritable index folder, a huge file — the old index always survives."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index, IndexProblem, build_index


def _many_docs(corpus, n, start=0):
    for i in range(start, start + n):
        (corpus / f"bulk_{i:05d}.txt").write_text(
            f"گزارش شماره {i}\n" + " ".join(f"واژه{(i * 7 + j) % 997}" for j in range(120)) + ".", "utf-8")


def test_sigkill_mid_build_keeps_previous_index_and_next_run_completes(tiny_engine):
    s = tiny_engine.settings
    before = tiny_engine.ask("Geneva snow airport")
    docs_before = set(tiny_engine.index.documents)
    _many_docs(s.corpus_dir, 1500)
    env = dict(os.environ, RAG_PROJECT_ROOT=str(s.project_root), RAG_MODEL="hash-256")
    cmd = [sys.executable, "-m", "rag.cli", "index", "--quiet"]
    rng = random.Random(7)
    killed = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        idx = Index.load(s.index_dir, s, HashEmbedder(256))  # loadable, verified
        if killed and set(idx.documents) == docs_before:
            again = Engine(s, HashEmbedder(256)).ask("Geneva snow airport")
            assert again.text == before.text and again.citations == before.citations
    assert killed >= 1, "the build was never caught mid-way; make the corpus larger"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    idx = Index.load(s.index_dir, s, HashEmbedder(256))
    assert len(idx.documents) == len(docs_before) + 1500
    assert not [p for p in (s.index_dir / "builds").iterdir() if p.name.startswith((".tmp", ".partial"))]


def test_checkpoint_lets_a_killed_build_resume(tiny_engine, monkeypatch):
    from rag import index as index_mod

    s = tiny_engine.settings
    keys_before = set(tiny_engine.index.sent_keys)
    _many_docs(s.corpus_dir, 300)
    calls = {"n": 0}
    real = HashEmbedder.embed_documents

    def dies_after_two_slices(self, texts):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # as if killed
        return real(self, texts)

    monkeypatch.setattr(index_mod, "CHECKPOINT_EVERY", 64)
    monkeypatch.setattr(HashEmbedder, "embed_documents", dies_after_two_slices)
    with pytest.raises(KeyboardInterrupt):
        build_index(s, HashEmbedder(256))
    monkeypatch.setattr(HashEmbedder, "embed_documents", real)
    report = build_index(s, HashEmbedder(256))
    # the two slices of 64 embedded before the "kill" were kept and not embedded again
    new_keys = set(Index.load(s.index_dir, s, HashEmbedder(256)).sent_keys) - keys_before
    assert report.embedded_sentences == len(new_keys) - 128


def test_unwritable_index_folder_is_a_clear_error_and_old_index_intact(tiny_engine, monkeypatch):
    s = tiny_engine.settings
    current = (s.index_dir / "current").resolve()
    (s.corpus_dir / "more.txt").write_text("سندی تازه برای ساخت دوباره.", "utf-8")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("rag.index.os.replace", read_only)
    with pytest.raises(IndexProblem, match="Read-only file system.*previous index is unchanged"):
        build_index(s, HashEmbedder(256))
    monkeypatch.undo()
    assert (s.index_dir / "current").resolve() == current
    assert len(Index.load(s.index_dir, s, HashEmbedder(256)).documents) == 3


def test_index_folder_that_cannot_be_created(tiny_project, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    s = tiny_project.replace(index_dir=blocker / "index")
    with pytest.raises(IndexProblem, match="cannot write the index folder"):
        build_index(s, HashEmbedder(256))


def test_huge_file_is_skipped_with_a_message(tiny_project):
    big = tiny_project.corpus_dir / "huge.txt"
    with open(big, "w", encoding="utf-8") as f:
        line = "این یک خط طولانی برای آزمایش است " * 30 + "\n"
        while f.tell() < 50 * 2**20:
            f.write(line)
    engine = Engine(tiny_project, HashEmbedder(256))
    report = engine.build()
    skipped = {x.source: x.reason for x in report.skipped}
    assert "file too large" in skipped["corpus/huge.txt"] and "RAG_MAX_FILE_MB" in skipped["corpus/huge.txt"]
    assert report.documents == 3
