import json

from rag.corpus import clean, decode, doc_id, html_to_text, load_corpus
from tests.conftest import SEEDS


def test_seed_corpus_loads_with_titles_and_languages():
    load = load_corpus(SEEDS, SEEDS.parent)
    assert load.skipped == []
    assert len(load.documents) == 5
    by_source = {d.source: d for d in load.documents}
    assert by_source["corpus/002_27d2148a64835134.txt"].lang == "ar"
    assert by_source["corpus/004_ef6e32c70ca40c0f.txt"].lang == "fa"
    assert by_source["corpus/003_d5051b75434b2ec2.txt"].title == "جزییات دیدار محرمانه پوتین و اوباما"


def test_repeated_paragraphs_are_dropped_once():
    raw = (SEEDS / "001_068be423bd4cb168.txt").read_text("utf-8")
    doc = next(d for d in load_corpus(SEEDS, SEEDS.parent).documents if d.source.endswith("001_068be423bd4cb168.txt"))
    line = "به گزارش عصرایران، این دیدار در محل اقامتگاه نماینده ایران در سازمان ملل متحد در نیویورک برگزار شد."
    assert raw.count(line) == 2
    assert doc.text.count(line) == 1
    assert "منبع عکس ها ایسنا" in doc.text  # nothing else lost


def test_ids_are_content_hashes_and_stable(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("سلام دنیا. این یک آزمایش است.", "utf-8")
    first = load_corpus(tmp_path / "corpus", tmp_path).documents[0]
    (tmp_path / "corpus" / "a.txt").rename(tmp_path / "corpus" / "b.txt")
    second = load_corpus(tmp_path / "corpus", tmp_path).documents[0]
    assert first.id == second.id == doc_id(first.text)
    assert second.source == "corpus/b.txt"


def test_encodings_are_detected(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "وزير الخارجية الأميركي جون كيري التقى نظيره الإيراني في نيويورك."
    (corpus / "cp1256.txt").write_bytes(text.encode("cp1256"))
    (corpus / "utf16.txt").write_bytes(text.encode("utf-16"))
    (corpus / "utf16le-nobom.txt").write_bytes(text.encode("utf-16-le"))
    (corpus / "utf8bom.txt").write_bytes(b"\xef\xbb\xbf" + (text + " 2").encode("utf-8"))
    load = load_corpus(corpus, tmp_path)
    assert load.skipped == [s for s in load.skipped if "duplicate" in s.reason]
    texts = {d.source.split("/")[-1]: d.text for d in load.documents}
    assert texts["cp1256.txt"] == text
    assert texts["utf8bom.txt"] == text + " 2"
    # the utf-16 files hold the same text: one document, the other reported as a duplicate
    assert len(load.documents) == 2 and len(load.skipped) == 2


def test_bad_files_are_reported_by_name_and_skipped(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("یک سند خوب با متن کافی.", "utf-8")
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "spaces.txt").write_text("   \n\t  ", "utf-8")
    (corpus / "punct.md").write_text("... !!! ؟؟؟", "utf-8")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (corpus / "latin1.txt").write_bytes("café crème brûlée".encode("latin-1"))
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n")
    load = load_corpus(corpus, tmp_path)
    assert [d.source for d in load.documents] == ["corpus/good.txt"]
    reasons = {s.source: s.reason for s in load.skipped}
    assert reasons["corpus/empty.txt"] == "empty file"
    assert "no text" in reasons["corpus/spaces.txt"]
    assert "no text" in reasons["corpus/punct.md"]
    assert "binary" in reasons["corpus/binary.txt"]
    assert "UTF-8" in reasons["corpus/latin1.txt"]
    assert "unsupported" in reasons["corpus/image.png"]


def test_html_keeps_text_only():
    title, text = html_to_text("<html><head><title>خبر</title><script>alert(1)</script></head>"
                               "<body><p>متن <b>اصلی</b></p><style>p{}</style><div>دوم</div></body></html>")
    assert title == "خبر"
    assert text == "متن اصلی\nدوم"
    assert "alert" not in text


def test_jsonl_documents_and_broken_lines(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [json.dumps({"text": "خبر اول درباره مذاکرات.", "title": "اول", "url": "http://x", "date": "2024-01-01"}, ensure_ascii=False),
             "{not json", json.dumps({"title": "no text"}), "", json.dumps({"id": "my-id", "text": "خبر دوم."}, ensure_ascii=False)]
    (corpus / "news.jsonl").write_text("\n".join(lines), "utf-8")
    load = load_corpus(corpus, tmp_path)
    assert [(d.source, d.title) for d in load.documents] == [("corpus/news.jsonl#1", "اول"), ("corpus/news.jsonl#5", "خبر دوم.")]
    assert load.documents[0].url == "http://x" and load.documents[1].id == "my-id"
    assert {s.source for s in load.skipped} == {"corpus/news.jsonl#2", "corpus/news.jsonl#3"}


def test_decode_and_clean_units():
    assert decode("سلام".encode("utf-16-be")) == "سلام"
    assert clean("a\r\nb\rc\x07") == "a\nb\nc"


def test_read_cache_reads_only_new_or_changed_files(tmp_path, monkeypatch):
    import os

    import rag.corpus as corpus_mod

    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(3):
        (folder / f"a{i}.txt").write_text(f"Article {i} about the port of Aden and its cranes.", "utf-8")
    cache = tmp_path / "index" / corpus_mod.READ_CACHE
    first = corpus_mod.load_corpus(folder, tmp_path, cache=cache)
    assert cache.is_file() and len(first.documents) == 3

    calls = []
    real = corpus_mod.read_file
    monkeypatch.setattr(corpus_mod, "read_file", lambda p, *a, **k: calls.append(p.name) or real(p, *a, **k))
    again = corpus_mod.load_corpus(folder, tmp_path, cache=cache)
    assert calls == [] and again.documents == first.documents  # nothing read again

    changed = folder / "a1.txt"
    changed.write_text("Article 1, rewritten: the cranes of Aden were sold.", "utf-8")
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    (folder / "a2.txt").unlink()
    (folder / "a3.txt").write_text("A new article about Geneva.", "utf-8")
    third = corpus_mod.load_corpus(folder, tmp_path, cache=cache)
    assert sorted(calls) == ["a1.txt", "a3.txt"]
    assert sorted(d.source for d in third.documents) == ["corpus/a0.txt", "corpus/a1.txt", "corpus/a3.txt"]
    assert any("rewritten" in d.text for d in third.documents)


def test_a_damaged_read_cache_is_only_a_slower_read(tmp_path):
    import rag.corpus as corpus_mod

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("An article about the harbour.", "utf-8")
    cache = tmp_path / corpus_mod.READ_CACHE
    cache.write_bytes(b"not a pickle")
    load = corpus_mod.load_corpus(folder, tmp_path, cache=cache)
    assert [d.source for d in load.documents] == ["corpus/a.txt"]
    assert corpus_mod.ReadCache(cache).entries  # rewritten, usable next time
