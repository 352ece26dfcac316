"""Incremental updates: delta segments, deletions, merges, BM25 over raw counts, ANN settings.

Real FAISS in temporary folders with the hash embedder; exact assertions."""

import json
import random

import bm25s
import numpy as np
import pytest

from rag import build as build_mod
from rag import dense as dense_mod
from rag.dense import DenseSearch
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index
from rag.lexical import Lexical, Postings
from rag.retrieval import dense_search, lexical_search, retrieve

WORDS = ["نفت", "قیمت", "ایران", "تهران", "النفط", "السعر", "الرياض", "oil", "price", "market", "بازار", "سهام",
         "البورصة", "خبر", "اقتصاد", "الاقتصاد", "gas", "گاز", "صادرات", "الصادرات"]


def _random_passages(n, seed=0):
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(0, 14))] for _ in range(n)]


# ---------------------------------------------------------------- BM25 over raw counts
def test_bm25_scores_equal_bm25s():
    """rag.lexical scores exactly as one bm25s index of the same passages (its default,
    lucene), repeated and unknown query tokens and empty passages included."""
    passages = _random_passages(300)
    ref = bm25s.BM25()
    ref.index([t or [""] for t in passages], show_progress=False)
    mine = Lexical([Postings.from_tokens(passages)], [None])
    for q in (["نفت", "قیمت"], ["oil", "oil", "price"], ["السعر", "ناشناخته"], ["gas"]):
        expected = ref.get_scores(q)
        assert np.allclose(mine.scores(q), expected, rtol=1e-5, atol=1e-6), q
        top = mine.search(q, 10)
        assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
        assert np.allclose([s for _, s in top], np.sort(expected)[::-1][:10], rtol=1e-5)


def test_bm25_over_segments_with_deletions_equals_one_index_of_the_live_passages():
    passages = _random_passages(200, seed=1)
    a, b = passages[:150], passages[150:]
    live_a = np.ones(150, bool)
    live_a[[3, 50, 51, 149]] = False
    seg = Lexical([Postings.from_tokens(a), Postings.from_tokens(b)], [live_a, None])
    kept = [p for p, ok in zip(a, live_a, strict=True) if ok] + b
    one = Lexical([Postings.from_tokens(kept)], [None])
    assert seg.n == one.n == 196 and seg.df == one.df
    for q in (["نفت", "بازار"], ["الرياض"], ["oil", "gas", "گاز"]):
        assert np.allclose(seg.scores(q), one.scores(q), rtol=1e-6)
        got, want = seg.search(q, 7), one.search(q, 7)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [x for _, x in got] == pytest.approx([x for _, x in want])


def test_postings_round_trip(tmp_path):
    p = Postings.from_tokens(_random_passages(50, seed=2))
    p.save(tmp_path)
    q = Postings.load(tmp_path)
    assert q.vocab == p.vocab
    for f in ("indptr", "indices", "tf", "lengths"):
        assert np.array_equal(getattr(q, f), getattr(p, f))


# ---------------------------------------------------------------- dense over segments
def test_dense_search_over_segments_skips_deleted_sentences():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    a, b = vecs[:200], vecs[200:]
    live_a = np.ones(200, bool)
    live_a[rng.choice(200, 60, replace=False)] = False
    live = np.concatenate([live_a, np.ones(100, bool)])
    kept = vecs[live]
    ds = DenseSearch([dense_mod.build("flat", a), dense_mod.build("flat", b)], [live_a, np.ones(100, bool)],
                     kept.astype(np.float16))
    assert ds.ntotal == len(kept) == 240
    for q in rng.standard_normal((10, 32)).astype(np.float32):
        scores, ids = ds.search(q, 15)
        exact = np.argsort(-(kept @ q), kind="stable")[:15]
        assert list(ids[0]) == list(exact)
        assert np.allclose(scores[0], (kept @ q)[exact], atol=1e-5)


# ---------------------------------------------------------------- incremental builds
def _files(index_dir):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (index_dir / "segments").rglob("*") if p.is_file()}


def test_an_added_document_is_a_delta_segment_found_and_cited_with_exact_offsets(tiny_engine, monkeypatch):
    s = tiny_engine.settings
    before = _files(s.index_dir)
    hashed = []
    real = build_mod.sha256_file
    monkeypatch.setattr(build_mod, "sha256_file", lambda f: hashed.append(f) or real(f))
    text = "بارش برف سنگین در تبریز\nدر تبریز دیروز برف سنگینی بارید و مدارس تعطیل شد. ارتفاع برف به ۴۰ سانتی‌متر رسید."
    (s.corpus_dir / "tabriz.txt").write_text(text, "utf-8")
    report = tiny_engine.build()
    assert report.update == "delta" and report.documents == 4 and report.removed == 0
    assert report.embedded_sentences == 3  # only the new document's sentences
    m = tiny_engine.index.manifest
    assert [seg["faiss"] for seg in m["segments"]] == ["flat", "flat"]
    # nothing written before was rewritten or hashed again
    after = _files(s.index_dir)
    assert all(after[p] == v for p, v in before.items())
    assert {f.parent.name.removeprefix(".tmp-") for f in hashed} == {m["segments"][1]["name"]}
    ans = tiny_engine.ask("ارتفاع برف در تبریز چقدر بود؟")
    c = ans.citations[0]
    assert c.source == "corpus/tabriz.txt"
    doc = tiny_engine.index.documents[c.doc_id]
    assert doc.text[c.start:c.end] == c.text and c.text in text
    assert Engine(s, HashEmbedder(256)).ensure_index() is None  # current now


def _doc_passages(index, source):
    return [i for i, p in enumerate(index.passages) if index.documents[p.doc_id].source == source]


def test_deleted_and_changed_documents_disappear(tiny_engine, monkeypatch):
    monkeypatch.setattr(build_mod, "DEAD_SHARE", 1.0)  # two of three documents go: still a delta here
    s = tiny_engine.settings
    idx = tiny_engine.index
    old = next(d for d in idx.documents.values() if d.source == "corpus/ar_meeting.txt")
    (s.corpus_dir / "ar_meeting.txt").unlink()
    (s.corpus_dir / "en_weather.md").write_text("# Geneva weather\nGeneva had sunshine on Saturday.", "utf-8")
    report = tiny_engine.build()
    assert report.update == "delta" and report.removed == 2 and report.documents == 2
    idx = tiny_engine.index
    assert old.id not in idx.documents and {d.source for d in idx.documents.values()} == {
        "corpus/fa_call.txt", "corpus/en_weather.md"}
    assert all(idx.documents[p.doc_id].text[p.start:p.end] == p.text for p in idx.passages)
    q_vec = tiny_engine.embedder.embed_queries([old.text])[0]
    assert not [i for i, _ in dense_search(idx, q_vec, 5) if idx.passages[i].doc_id == old.id]
    assert lexical_search(idx, "كيري ظريف نيويورك", 5) == []
    assert lexical_search(idx, "heavy snow airport", 5) == []  # the old version's words
    hit = lexical_search(idx, "Geneva sunshine", 1)[0][0]
    assert idx.documents[idx.passages[hit].doc_id].text.endswith("sunshine on Saturday.")
    assert idx.dense.ntotal == len(idx.sentence_vectors) == len(idx.sent_keys) == len(idx.sent_passage)
    assert idx.df["_n"] == len(idx.passages)
    # putting the deleted file back brings it back without embedding it again
    (s.corpus_dir / "ar_meeting.txt").write_text(old.text, "utf-8")
    assert tiny_engine.build().embedded_sentences == 0
    assert old.id in tiny_engine.index.documents


def test_incremental_index_answers_as_a_full_build_of_the_same_corpus(tiny_project):
    """Adds, changes and deletions as delta segments give the same retrieval (passages and
    scores, BM25 statistics included) as one build of the final corpus."""
    rng = random.Random(3)
    corpus = tiny_project.corpus_dir

    def write(i):
        body = " ".join(rng.choice(WORDS) for _ in range(30))
        (corpus / f"n{i:02d}.txt").write_text(f"خبر {i}\n{body}.\n{body[::-1]}.", "utf-8")

    for i in range(20):
        write(i)
    inc = Engine(tiny_project, HashEmbedder(256))
    assert inc.build().update == "full"
    for i in range(20, 30):
        write(i)
    for i in (3, 25):
        (corpus / f"n{i:02d}.txt").unlink()
    write(7)
    assert inc.build().update == "delta"
    full_settings = tiny_project.replace(index_dir=tiny_project.project_root / "index-full")
    full = Engine(full_settings, HashEmbedder(256))
    assert full.build().update == "full"
    a, b = inc.index, full.index
    assert len(a.passages) == len(b.passages) and a.df == b.df
    for q in ("قیمت نفت تهران", "النفط الرياض", "oil market gas", "صادرات گاز"):
        qv = inc.embedder.embed_queries([q])[0]
        for mode in ("lexical", "dense", "hybrid"):
            ha = retrieve(a, q, qv, tiny_project, mode=mode, k=8)
            hb = retrieve(b, q, qv, full_settings, mode=mode, k=8)
            assert [h.score for h in ha] == pytest.approx([h.score for h in hb], abs=1e-5), (q, mode)
            assert {h.passage.id for h in ha} == {h.passage.id for h in hb} or mode == "hybrid"


def test_deltas_are_merged_into_a_new_base(tiny_engine, monkeypatch):
    s = tiny_engine.settings
    monkeypatch.setattr(build_mod, "DELTA_MIN", 0)
    monkeypatch.setattr(build_mod, "DELTA_SHARE", 10.0)
    for i in range(3):
        (s.corpus_dir / f"extra{i}.txt").write_text(f"سند شماره {i} درباره موضوع {i}.", "utf-8")
        assert tiny_engine.build().update == "delta"
    assert len(tiny_engine.index.manifest["segments"]) == 4
    monkeypatch.setattr(build_mod, "DELTA_SHARE", 0.0)
    (s.corpus_dir / "extra9.txt").write_text("سند آخر.", "utf-8")
    report = tiny_engine.build()
    assert report.update == "full" and report.embedded_sentences == 1  # everything else reused
    assert len(tiny_engine.index.manifest["segments"]) == 1 and report.documents == 7
    tiny_engine.build()  # unchanged: nothing written
    # only the segments of the current and previous builds stay on disk
    kept = {seg["name"] for b in (s.index_dir / "builds").iterdir()
            for seg in json.loads((b / "manifest.json").read_text("utf-8"))["segments"]}
    assert {d.name for d in (s.index_dir / "segments").iterdir()} == kept


def test_too_many_deletions_rewrite_the_base(tiny_engine):
    s = tiny_engine.settings
    (s.corpus_dir / "ar_meeting.txt").unlink()
    (s.corpus_dir / "en_weather.md").unlink()
    report = tiny_engine.build()
    assert report.update == "full" and report.embedded_sentences == 0 and report.documents == 1
    assert tiny_engine.index.manifest.get("deleted") == {}


def test_a_reload_shares_the_segments_already_in_memory(tiny_engine):
    s = tiny_engine.settings
    first = tiny_engine.index
    (s.corpus_dir / "more.txt").write_text("سند دیگر.", "utf-8")
    tiny_engine.build()
    second = tiny_engine.index
    assert second._segments[0] is first._segments[0] and len(second._segments) == 2


def test_unchanged_corpus_writes_nothing(tiny_engine):
    s = tiny_engine.settings
    before = (s.index_dir / "current").resolve()
    report = tiny_engine.build()
    assert report.update == "unchanged" and report.embedded_sentences == 0
    assert (s.index_dir / "current").resolve() == before


# ---------------------------------------------------------------- ANN settings
def _many_documents(project, n=120, seed=0):
    rng = random.Random(seed)
    words = [f"واژه{i}" for i in range(500)]
    for i in range(n):
        body = "\n".join(" ".join(rng.choice(words) for _ in range(10)) + "." for _ in range(25))
        (project.corpus_dir / f"gen_{i:03d}.txt").write_text(f"سند {i}\n{body}", "utf-8")
    return words, rng


def test_ivf_and_its_probe_setting_are_honoured(tiny_project):
    words, rng = _many_documents(tiny_project)
    s = tiny_project.replace(faiss="ivf", faiss_probe=7)
    engine = Engine(s, HashEmbedder(256))
    engine.build()
    m = engine.index.manifest
    assert m["faiss"] == "ivf" and m["segments"][0]["faiss"] == "ivf"
    ivf = engine.index.dense.indexes[0]
    assert ivf.nlist == dense_mod.ivf_lists(ivf.ntotal) == 64
    assert engine.index.dense.params[0].nprobe == 7
    assert Index.load(s.index_dir, s.replace(faiss_probe=0)).dense.params[0].nprobe == dense_mod.IVF_PROBE
    # approximate candidates are re-scored exactly: every score is the true best-sentence cosine
    q = engine.embedder.embed_queries([" ".join(rng.choice(words) for _ in range(5))])[0]
    for i, score in dense_search(engine.index, q, 5):
        assert score == pytest.approx(engine.index.passage_cosine(i, q), abs=1e-5)
    # an update appends an exact delta; the base stays IVF
    (tiny_project.corpus_dir / "new.txt").write_text("خبر تازه درباره واژه۱ و واژه۲.", "utf-8")
    assert engine.build().update == "delta"
    assert [seg["faiss"] for seg in engine.index.manifest["segments"]] == ["ivf", "flat"]


def test_auto_uses_exact_search_below_the_threshold_and_ivf_above(tiny_project, monkeypatch):
    _many_documents(tiny_project, n=110)
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    assert engine.index.manifest["segments"][0]["faiss"] == "flat"
    monkeypatch.setattr(dense_mod, "AUTO_ANN_SENTENCES", 1000)
    engine = Engine(tiny_project.replace(index_dir=tiny_project.project_root / "index2"), HashEmbedder(256))
    engine.build()
    assert engine.index.manifest["segments"][0]["faiss"] == "ivf"


def test_hnsw_ef_search_setting_is_honoured(tiny_project):
    s = tiny_project.replace(faiss="hnsw", faiss_probe=40)
    engine = Engine(s, HashEmbedder(256))
    engine.build()
    assert engine.index.dense.params[0].efSearch == 40
    assert Index.load(s.index_dir, s.replace(faiss_probe=0)).dense.params[0].efSearch == dense_mod.HNSW_EF


def test_unknown_faiss_setting_is_refused(tiny_project):
    with pytest.raises(ValueError, match="faiss must be"):
        tiny_project.replace(faiss="annoy")


# ---------------------------------------------------------------- responsive while building
def test_questions_are_answered_from_the_current_index_while_an_update_builds(tiny_engine):
    import threading

    s = tiny_engine.settings
    entered, gate = threading.Event(), threading.Event()

    class SlowEmbedder(HashEmbedder):
        def embed_documents(self, texts):
            entered.set()
            assert gate.wait(30)
            return super().embed_documents(texts)

    engine = Engine(s, SlowEmbedder(256))
    assert engine.ask("تماس پوتین و ترامپ").citations[0].source == "corpus/fa_call.txt"
    (s.corpus_dir / "solar.txt").write_text("نیروگاه خورشیدی اصفهان\nنیروگاه خورشیدی اصفهان افتتاح شد.", "utf-8")
    job = engine.start_build()
    assert entered.wait(30) and not job.done
    during = engine.ask("نیروگاه خورشیدی اصفهان")  # the update is still embedding
    assert all(c.source != "corpus/solar.txt" for c in during.citations)
    gate.set()
    report = job.wait(60)
    assert job.done and report.update == "delta"
    assert engine.ask("نیروگاه خورشیدی اصفهان").citations[0].source == "corpus/solar.txt"


def test_eta_from_the_pace_of_the_stage():
    from rag.progress import Eta, describe

    now = [0.0]
    eta = Eta(clock=lambda: now[0])
    assert eta("embedding", 0, 1000) is None
    now[0] = 1.0
    assert eta("embedding", 100, 1000) is None  # too early to say
    now[0] = 10.0
    assert eta("embedding", 500, 1000) == pytest.approx(10.0)
    assert eta("dense", 0, 10) is None  # a new stage starts over
    assert describe("embedding", 500, 1000, 10.0) == "embedding new sentences: 500 of 1000 (about 10 s left)"
    assert describe("embedding", 5, 1000, 7200.0).endswith("(about 2.0 h left)")
