import json

import numpy as np
import pytest

from rag import build as build_mod
from rag import index as index_mod
from rag.build import build_index
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index, IndexProblem


def test_save_load_round_trip(tiny_engine):
    s = tiny_engine.settings
    built = tiny_engine.index
    loaded = Index.load(s.index_dir, s, HashEmbedder(256))
    assert loaded.manifest == built.manifest
    assert [p.to_dict() for p in loaded.passages] == [p.to_dict() for p in built.passages]
    assert np.array_equal(loaded.sentence_vectors, built.sentence_vectors)
    assert loaded.dense.ntotal == len(loaded.sentence_vectors) == len(loaded.sent_keys) > len(loaded.passages)
    for p in loaded.passages:
        assert loaded.documents[p.doc_id].text[p.start:p.end] == p.text
    m = loaded.manifest
    assert m["model"] == {"id": "hash-256", "sha256": "none", "dim": 256, "normalized": True, "dtype": "float32",
                          "backend": "hash", "agreement": 0.0}
    assert m["chunking"]["chunk_size"] == 800 and m["corpus"]["documents"] == 3
    assert [seg["faiss"] for seg in m["segments"]] == ["flat"]  # auto: exact below 50k sentences
    assert set(m["segments"][0]["files"]) == set(index_mod.SEGMENT_FILES)
    assert loaded.sentence_vectors.dtype == np.float16
    assert (s.index_dir / "current").is_symlink()


def _segment_file(s, name, n=0):
    m = json.loads((s.index_dir / "current" / "manifest.json").read_text("utf-8"))
    return s.index_dir / "segments" / m["segments"][n]["name"] / name


def test_incremental_reindex_embeds_only_changes(tiny_engine):
    s = tiny_engine.settings
    corpus = s.corpus_dir
    n_before = len(tiny_engine.index.passages)
    # nothing changed: nothing embedded
    r = tiny_engine.build()
    assert r.embedded_sentences == 0
    # add one, change one, delete one
    (corpus / "new.txt").write_text("سند تازه درباره انرژی خورشیدی در اصفهان.", "utf-8")
    (corpus / "en_weather.md").write_text("# Geneva weather\nGeneva had sunshine on Saturday.", "utf-8")
    (corpus / "ar_meeting.txt").unlink()
    r = tiny_engine.build()
    assert r.documents == 3
    # only the new sentences: "سند تازه…" and "Geneva had sunshine…"; the changed file's
    # unchanged heading and all of fa_call.txt are reused
    assert r.embedded_sentences == 2
    assert r.reused > 0
    sources = {d.source for d in tiny_engine.index.documents.values()}
    assert sources == {"corpus/fa_call.txt", "corpus/new.txt", "corpus/en_weather.md"}
    assert len(tiny_engine.index.passages) == n_before
    ans = tiny_engine.ask("انرژی خورشیدی اصفهان")
    assert ans.citations[0].source == "corpus/new.txt"


def test_missing_index_says_what_to_run(tiny_project):
    with pytest.raises(IndexProblem, match="rag index"):
        Index.load(tiny_project.index_dir, tiny_project, HashEmbedder(256))


def test_other_model_is_refused(tiny_engine):
    s = tiny_engine.settings
    with pytest.raises(IndexProblem, match="built with model hash-256"):
        Index.load(s.index_dir, s, HashEmbedder(128))
    with pytest.raises(IndexProblem, match="rebuild"):
        Index.load(s.index_dir, s.replace(model="embeddinggemma-300m"))


@pytest.mark.parametrize("victim", ["dense.faiss", "sentence_vectors.npy", "documents.jsonl", "vocab.json", "lexical.npz"])
def test_damaged_file_is_detected(tiny_engine, victim):
    s = tiny_engine.settings
    f = _segment_file(s, victim)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexProblem, match=r"damaged: run `rag index`"):
        Index.load(s.index_dir, s, HashEmbedder(256))


def test_damage_of_the_same_size_is_found_by_its_time_or_by_rehashing(tiny_engine):
    """Loading trusts a file whose size and modification time are as written (as the model's
    weights are trusted); a changed time makes it hash the file; rehash=True hashes all."""
    import os

    s = tiny_engine.settings
    f = _segment_file(s, "passages.jsonl")
    st = f.stat()
    f.write_text(f.read_text("utf-8").replace('"start": 0', '"start": 1', 1), "utf-8")
    with pytest.raises(IndexProblem, match="damaged"):
        Index.load(s.index_dir, s, HashEmbedder(256))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # damage that keeps size and time
    Index.load(s.index_dir, s, HashEmbedder(256))
    with pytest.raises(IndexProblem, match="damaged"):
        Index.load(s.index_dir, s, HashEmbedder(256), rehash=True)


def test_edited_manifest_is_detected(tiny_engine):
    s = tiny_engine.settings
    f = s.index_dir / "current" / "manifest.json"
    f.write_text("{ not json", "utf-8")
    with pytest.raises(IndexProblem, match="manifest"):
        Index.load(s.index_dir, s, HashEmbedder(256))
    f.write_text(json.dumps({"format": 99}), "utf-8")
    with pytest.raises(IndexProblem, match="format"):
        Index.load(s.index_dir, s, HashEmbedder(256))



def test_index_of_an_older_format_is_rebuilt_reusing_its_vectors(tiny_engine):
    """Format 2 (one folder per build, float32 vectors) → 3 (segments): `rag ask` says to
    re-index; `rag index` / `make run` rebuilds without embedding any sentence again."""
    s = tiny_engine.settings
    f = s.index_dir / "current" / "manifest.json"
    m = json.loads(f.read_text("utf-8"))
    # the layout format 2 wrote: keys and float32 vectors in the build folder itself
    (f.parent / "sentence_keys.json").write_bytes(_segment_file(s, "sentence_keys.json").read_bytes())
    np.save(f.parent / "sentence_vectors.npy", np.load(_segment_file(s, "sentence_vectors.npy")).astype(np.float32))
    f.write_text(json.dumps({k: v for k, v in m.items() if k not in ("segments", "deleted")} | {"format": 2}), "utf-8")
    with pytest.raises(IndexProblem, match="has format 2.*run `rag index`"):
        Index.load(s.index_dir, s, HashEmbedder(256))
    engine = Engine(s, HashEmbedder(256))
    report = engine.ensure_index()
    assert report is not None and report.embedded_sentences == 0 and report.reused == report.sentences > 0
    assert engine.index.manifest["format"] == index_mod.FORMAT

def test_failed_build_leaves_previous_index(tiny_engine, monkeypatch):
    s = tiny_engine.settings
    before = (s.index_dir / "current").resolve()
    (s.corpus_dir / "another.txt").write_text("متن دیگری برای ساخت دوباره.", "utf-8")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_mod, "np", type("NP", (), {"save": boom, "savez": boom, "__getattr__": lambda self, n: getattr(np, n)})())
    with pytest.raises(IndexProblem, match="No space.*previous index is unchanged"):
        build_index(s, HashEmbedder(256))
    monkeypatch.undo()
    assert (s.index_dir / "current").resolve() == before
    assert not [p for p in (s.index_dir / "builds").iterdir() if p.name.startswith(".tmp")]
    assert len(Index.load(s.index_dir, s, HashEmbedder(256)).documents) == 3


def test_only_current_and_previous_builds_are_kept(tiny_engine):
    s = tiny_engine.settings
    for i in range(3):
        (s.corpus_dir / f"extra{i}.txt").write_text(f"سند شماره {i} درباره موضوع {i}.", "utf-8")
        tiny_engine.build()
    assert len(list((s.index_dir / "builds").iterdir())) == 2
    assert (s.index_dir / "previous").resolve().exists()


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "empty.txt").write_text("", "utf-8")
    from rag.config import Settings

    with pytest.raises(IndexProblem, match="no readable documents"):
        Engine(Settings(project_root=tmp_path, model="hash-256"), HashEmbedder(256)).build()


def test_hnsw_option(tiny_project):
    s = tiny_project.replace(faiss="hnsw")
    engine = Engine(s, HashEmbedder(256))
    engine.build()
    assert engine.index.manifest["faiss"] == "hnsw"
    assert engine.ask("تماس پوتین و ترامپ", mode="dense").citations[0].source == "corpus/fa_call.txt"


def test_hnsw_finds_what_exact_search_finds(tiny_project):
    """The approximate index scans sentences too; on a few hundred documents it must
    return (nearly) the same top passages as the exact one."""
    import random

    from rag.retrieval import dense_search

    rng = random.Random(0)
    words = [f"واژه{i}" for i in range(400)]
    for i in range(200):
        body = "\n".join(" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(6))
        (tiny_project.corpus_dir / f"gen_{i:03d}.txt").write_text(f"سند {i}\n{body}", "utf-8")
    flat = Engine(tiny_project, HashEmbedder(256))
    flat.build()
    hnsw = Engine(tiny_project.replace(faiss="hnsw", index_dir=tiny_project.project_root / "index-hnsw"), HashEmbedder(256))
    hnsw.build()
    overlap = []
    for _ in range(20):
        q_vec = flat.embedder.embed_queries([" ".join(rng.choice(words) for _ in range(5))])[0]
        a = [i for i, _ in dense_search(flat.index, q_vec, 5)]
        b = [i for i, _ in dense_search(hnsw.index, q_vec, 5)]
        assert len(b) == 5 and len(set(b)) == 5
        overlap.append(len(set(a) & set(b)) / 5)
    assert sum(overlap) / len(overlap) >= 0.9, overlap


# ---------------------------------------------------------------- one builder at a time
def _rag(project, *args):
    """A real `rag` process in the project folder (hash embedder, so it starts fast)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, RAG_PROJECT_ROOT=str(project), RAG_MODEL="hash-256")
    return subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_builders_started_together_all_succeed(tmp_path):
    """Several `rag index` processes on one empty index folder: each waits its turn, every one
    succeeds, and the index left behind is whole (without the lock, ~1 run in 6 failed with
    "no index at …" because one process pruned the build another had just renamed)."""
    from tests.conftest import write_tiny_corpus

    write_tiny_corpus(tmp_path)
    for name in range(12):
        (tmp_path / "corpus" / f"doc{name}.txt").write_text(f"سند {name}\n" + "جمله‌ای برای حجم. " * 300, "utf-8")
    for _ in range(3):
        procs = [_rag(tmp_path, "index", "--quiet") for _ in range(4)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert [rc for rc, _ in results] == [0, 0, 0, 0], results
    from rag.config import Settings

    s = Settings(project_root=tmp_path, model="hash-256")
    assert len(Index.load(s.index_dir, s, HashEmbedder(256)).documents) == 15
    left = sorted(p.name for p in (s.index_dir / "builds").iterdir())
    # the first build wrote the index, the others found it current and wrote nothing
    assert len(left) == 1 and not [n for n in left if n.startswith(".")], left


def test_a_second_builder_waits_or_fails_fast(tiny_engine):
    import fcntl

    s = tiny_engine.settings
    with open(s.index_dir / build_mod.LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as if another process were building
        held.truncate(0)
        held.write("4242")
        held.flush()
        fast = _rag(s.project_root, "index", "--no-wait")
        assert fast.wait(timeout=60) == 2
        err = fast.stderr.read()
        assert "another build of" in err and "process 4242" in err
        waiting = _rag(s.project_root, "index")
        import time

        time.sleep(3)
        assert waiting.poll() is None, "a second builder must wait while the lock is held"
        fcntl.flock(held, fcntl.LOCK_UN)
    assert waiting.wait(timeout=60) == 0
    assert "waiting for it to finish" in waiting.stderr.read()


def test_waiting_is_reported_as_a_stage(tiny_engine):
    import fcntl
    import threading

    s = tiny_engine.settings
    seen = []
    with open(s.index_dir / build_mod.LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: tiny_engine.build(on_progress=lambda *a: seen.append(a)))
        t.start()
        t.join(timeout=2)
        assert t.is_alive() and seen == [("waiting", 0, 0)]
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(timeout=60)
    assert not t.is_alive() and seen[-1] == ("store", 0, 0)  # the last stage: FAISS has nothing to send


# ---------------------------------------------------------------- the index notices every change
def test_renamed_file_is_noticed(tiny_engine):
    s = tiny_engine.settings
    (s.corpus_dir / "fa_call.txt").rename(s.corpus_dir / "putin_trump.txt")
    engine = Engine(s, HashEmbedder(256))
    report = engine.ensure_index()
    assert report is not None and report.embedded_sentences == 0  # same text: nothing re-embedded
    assert "corpus/putin_trump.txt" in {d.source for d in engine.index.documents.values()}
    assert Engine(s, HashEmbedder(256)).ensure_index() is None  # and now it is current


def test_edited_jsonl_record_with_its_own_id_is_noticed(tiny_project):
    f = tiny_project.corpus_dir / "feed.jsonl"
    f.write_text(json.dumps({"id": "n1", "title": "خبر", "text": "قیمت نفت امروز ۷۰ دلار بود."}, ensure_ascii=False) + "\n", "utf-8")
    engine = Engine(tiny_project, HashEmbedder(256))
    assert engine.ensure_index() is not None
    f.write_text(json.dumps({"id": "n1", "title": "خبر", "text": "قیمت نفت امروز ۸۰ دلار بود."}, ensure_ascii=False) + "\n", "utf-8")
    engine = Engine(tiny_project, HashEmbedder(256))
    assert engine.ensure_index() is not None
    doc = next(d for d in engine.index.documents.values() if d.source.startswith("corpus/feed.jsonl"))
    assert "۸۰" in doc.text


def test_changed_build_setting_is_noticed(tiny_engine):
    s = tiny_engine.settings
    assert Engine(s, HashEmbedder(256)).ensure_index() is None
    engine = Engine(s.replace(faiss="hnsw"), HashEmbedder(256))
    assert engine.ensure_index() is not None and engine.index.manifest["faiss"] == "hnsw"


def test_fingerprint_covers_what_a_build_depends_on(tiny_project):
    from dataclasses import replace

    from rag.corpus import load_project_corpus
    from rag.index import fingerprint

    docs = load_project_corpus(tiny_project).documents
    base = fingerprint(tiny_project, docs)
    assert fingerprint(tiny_project, list(reversed(docs))) == base  # order does not matter
    changed = [
        [replace(docs[0], source="corpus/elsewhere.txt")] + docs[1:],
        [replace(docs[0], text=docs[0].text + " ")] + docs[1:],
        [replace(docs[0], date="2025-01-01")] + docs[1:],
        [replace(docs[0], pages=(0, 10))] + docs[1:],
        docs[1:],
    ]
    for d in changed:
        assert fingerprint(tiny_project, d) != base
    for setting in ({"faiss": "hnsw"}, {"chunk_size": 400}, {"chunk_overlap": 50}, {"model": "hash-128"}, {"dim": 128}):
        assert fingerprint(tiny_project.replace(**setting), docs) != base, setting
    assert fingerprint(tiny_project.replace(k=9, mode="dense"), docs) == base  # query-time settings do not
