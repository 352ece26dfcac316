import json

import numpy as np
import pytest

from rag import index as index_mod
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index, IndexProblem, build_index


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
    assert m["model"] == {"id": "hash-256", "sha256": "none", "dim": 256, "normalized": True, "dtype": "float32"}
    assert m["chunking"]["chunk_size"] == 800 and m["corpus"]["documents"] == 3
    assert {"documents.jsonl", "passages.jsonl", "dense.faiss", "sentence_vectors.npy"} <= set(m["files"])
    assert (s.index_dir / "current").is_symlink()


def test_incremental_reindex_embeds_only_changes(tiny_engine):
    s = tiny_engine.settings
    corpus = s.corpus_dir
    n_before = len(tiny_engine.index.passages)
    # nothing changed: nothing embedded
    r = tiny_engine.build(progress=False)
    assert r.embedded_sentences == 0
    # add one, change one, delete one
    (corpus / "new.txt").write_text("سند تازه درباره انرژی خورشیدی در اصفهان.", "utf-8")
    (corpus / "en_weather.md").write_text("# Geneva weather\nGeneva had sunshine on Saturday.", "utf-8")
    (corpus / "ar_meeting.txt").unlink()
    r = tiny_engine.build(progress=False)
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


@pytest.mark.parametrize("victim", ["dense.faiss", "sentence_vectors.npy", "documents.jsonl", "lexical/vocab.index.json"])
def test_damaged_file_is_detected(tiny_engine, victim):
    s = tiny_engine.settings
    f = s.index_dir / "current" / victim
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexProblem, match=r"damaged: run `rag index`"):
        Index.load(s.index_dir, s, HashEmbedder(256))


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
    """Format 1 (passage vectors) → 2: `rag ask` says to re-index; `rag index` / `make run`
    rebuilds without embedding any sentence again."""
    s = tiny_engine.settings
    f = s.index_dir / "current" / "manifest.json"
    m = json.loads(f.read_text("utf-8"))
    f.write_text(json.dumps(m | {"format": 1}), "utf-8")
    with pytest.raises(IndexProblem, match="has format 1.*run `rag index`"):
        Index.load(s.index_dir, s, HashEmbedder(256))
    engine = Engine(s, HashEmbedder(256))
    report = engine.ensure_index(progress=False)
    assert report is not None and report.embedded_sentences == 0 and report.reused == report.sentences > 0
    assert engine.index.manifest["format"] == index_mod.FORMAT

def test_failed_build_leaves_previous_index(tiny_engine, monkeypatch):
    s = tiny_engine.settings
    before = (s.index_dir / "current").resolve()
    (s.corpus_dir / "another.txt").write_text("متن دیگری برای ساخت دوباره.", "utf-8")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_mod, "np", type("NP", (), {"save": boom, "savez": boom, "__getattr__": lambda self, n: getattr(np, n)})())
    with pytest.raises(IndexProblem, match="No space.*previous index is unchanged"):
        build_index(s, HashEmbedder(256), progress=False)
    monkeypatch.undo()
    assert (s.index_dir / "current").resolve() == before
    assert not [p for p in (s.index_dir / "builds").iterdir() if p.name.startswith(".tmp")]
    assert len(Index.load(s.index_dir, s, HashEmbedder(256)).documents) == 3


def test_only_current_and_previous_builds_are_kept(tiny_engine):
    s = tiny_engine.settings
    for i in range(3):
        (s.corpus_dir / f"extra{i}.txt").write_text(f"سند شماره {i} درباره موضوع {i}.", "utf-8")
        tiny_engine.build(progress=False)
    assert len(list((s.index_dir / "builds").iterdir())) == 2
    assert (s.index_dir / "previous").resolve().exists()


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "empty.txt").write_text("", "utf-8")
    from rag.config import Settings

    with pytest.raises(IndexProblem, match="no readable documents"):
        Engine(Settings(project_root=tmp_path, model="hash-256"), HashEmbedder(256)).build(progress=False)


def test_hnsw_option(tiny_project):
    s = tiny_project.replace(faiss="hnsw")
    engine = Engine(s, HashEmbedder(256))
    engine.build(progress=False)
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
    flat.build(progress=False)
    hnsw = Engine(tiny_project.replace(faiss="hnsw", index_dir=tiny_project.project_root / "index-hnsw"), HashEmbedder(256))
    hnsw.build(progress=False)
    overlap = []
    for _ in range(20):
        q_vec = flat.embedder.embed_queries([" ".join(rng.choice(words) for _ in range(5))])[0]
        a = [i for i, _ in dense_search(flat.index, q_vec, 5)]
        b = [i for i, _ in dense_search(hnsw.index, q_vec, 5)]
        assert len(b) == 5 and len(set(b)) == 5
        overlap.append(len(set(a) & set(b)) / 5)
    assert sum(overlap) / len(overlap) >= 0.9, overlap
