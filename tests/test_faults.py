"""Faults: a killed build, an unwritable index folder, a huge file — the old index always survives."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from rag import build as build_mod
from rag.build import build_index
from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index, IndexProblem
from tests.conftest import ROOT


def _many_docs(corpus, n, start=0):
    for i in range(start, start + n):
        (corpus / f"bulk_{i:05d}.txt").write_text(
            f"گزارش شماره {i}\n" + " ".join(f"واژه{(i * 7 + j) % 997}" for j in range(120)) + ".", "utf-8")


# a build that kills itself (SIGKILL: no cleanup, no finally) when `rag.build.build_index` reports
# the chosen stage and count through its progress callback
KILLED_AT = """
import os, signal, sys
from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.build import build_index

root, stage, at = sys.argv[1], sys.argv[2], int(sys.argv[3])


def on_progress(name, done, total):
    if name == stage and done == at:
        os.kill(os.getpid(), signal.SIGKILL)


build_index(Settings(project_root=root, model="hash-256"), HashEmbedder(256), on_progress=on_progress)
"""


@pytest.mark.parametrize("stage, at", [
    ("embedding", build_mod.CHECKPOINT_EVERY),  # after its first slice, of two
    ("writing", 1),  # documents and passages written, not the vectors
    ("dense", 0),
    ("lexical", 1),
    ("hashing", 1),  # the segment's files half hashed
    ("store", 0),  # the new segment in place, the new build not yet swapped in
])
def test_a_build_killed_at_any_stage_keeps_the_previous_index_and_the_next_build_is_whole(tiny_engine, tmp_path,
                                                                                           stage, at):
    s = tiny_engine.settings
    before = tiny_engine.ask("Geneva snow airport")
    docs_before = set(tiny_engine.index.documents)
    current = (s.index_dir / "current").resolve()
    _many_docs(s.corpus_dir, 50)  # about 200 sentences to embed: a slice of 128 and a shorter one
    (s.corpus_dir / "solar.txt").write_text("نیروگاه خورشیدی تازه در یزد افتتاح شد.", "utf-8")
    driver = tmp_path / "killed_at.py"
    driver.write_text(KILLED_AT, "utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    killed = subprocess.run([sys.executable, str(driver), str(s.project_root), stage, str(at)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # killed there, not finished nor failed

    # the previous index: still current, loads (files verified) and answers as before
    assert (s.index_dir / "current").resolve() == current
    assert set(Index.load(s.index_dir, s, HashEmbedder(256)).documents) == docs_before
    again = Engine(s, HashEmbedder(256)).ask("Geneva snow airport")
    assert (again.text, again.citations) == (before.text, before.citations)

    # the next build completes, leaves nothing half-written, and is the index a clean build makes
    report = build_index(s, HashEmbedder(256))
    built = Index.load(s.index_dir, s, HashEmbedder(256))
    new_keys = set(built.sent_keys) - set(tiny_engine.index.sent_keys)
    # what was embedded before the kill was checkpointed and is not embedded again: the first
    # slice, or (killed after the embedding) every vector
    assert report.embedded_sentences == (len(new_keys) - at if stage == "embedding" else 0)
    assert not [p for p in (s.index_dir / "builds").iterdir() if p.name.startswith((".tmp", ".partial"))]
    assert not [p for p in (s.index_dir / "segments").iterdir() if p.name.startswith(".tmp")]
    clean = Settings(project_root=tmp_path / "clean", model="hash-256")
    shutil.copytree(s.corpus_dir, clean.corpus_dir)
    build_index(clean, HashEmbedder(256))
    ref = Index.load(clean.index_dir, clean, HashEmbedder(256))
    assert len(built.documents) == len(docs_before) + 51 and set(built.documents) == set(ref.documents)
    assert built.manifest["fingerprint"] == ref.manifest["fingerprint"]
    assert built.manifest["corpus"] | {"dir": ""} == ref.manifest["corpus"] | {"dir": ""}
    vectors = dict(zip(built.sent_keys, built.sentence_vectors, strict=True))
    assert all(np.array_equal(vectors[k], v) for k, v in zip(ref.sent_keys, ref.sentence_vectors, strict=True))
    assert Engine(s, HashEmbedder(256)).ask("نیروگاه خورشیدی یزد").citations[0].source == "corpus/solar.txt"


def test_checkpoint_lets_a_killed_build_resume(tiny_engine, monkeypatch):
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

    monkeypatch.setattr(build_mod, "CHECKPOINT_EVERY", 64)
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

    monkeypatch.setattr("rag.build.os.replace", read_only)
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
