"""Lines repeated across many documents (site furniture) are dropped from what is indexed."""

from rag.boilerplate import remove_boilerplate, threshold
from rag.corpus import Document, doc_id, load_corpus, make_document
from tests.conftest import SEEDS

BODIES = [
    "سد کرج به کمترین حجم رسید. تنها ۲۲ درصد ظرفیت پر است.",
    "خط هفت مترو تا میدان صنعت رسید. طول خط ۲۷ کیلومتر شد.",
    "خرید گندم از هشت میلیون تن گذشت. خوزستان در صدر است.",
    "زمین‌لرزه بندرعباس خسارت جانی نداشت. عمق آن ۱۰ کیلومتر بود.",
]


def _corpus(tmp_path, bodies, extra=None):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, body in enumerate(bodies):
        tail = f"\n{extra[i]}" if extra and extra[i] else ""
        (corpus / f"{i}.txt").write_text(f"خبر {i}\n{body}\nنظر شما\n  ارسال   نظر{tail}\n", "utf-8")
    return corpus


def test_lines_in_many_documents_are_dropped_and_the_report_names_rule_and_threshold(tmp_path):
    extra = ["فقط در یک سند", "در دو سند", "در دو سند", None]
    load = load_corpus(_corpus(tmp_path, BODIES, extra), tmp_path)
    texts = {d.source: d.text for d in load.documents}
    assert len(texts) == 4
    for i, body in enumerate(BODIES):
        t = texts[f"corpus/{i}.txt"]
        assert body in t and "نظر شما" not in t and "ارسال" not in t
    assert "فقط در یک سند" in texts["corpus/0.txt"]  # one document: never dropped
    assert "در دو سند" in texts["corpus/1.txt"] and "در دو سند" in texts["corpus/2.txt"]  # below the threshold
    note = next(n for n in load.notes if n.startswith("boilerplate"))
    assert "«نظر شما» (4)" in note and "≥ 3 of 4 documents" in note and "2 repeated line(s)" in note
    for d in load.documents:
        assert d.id == doc_id(d.text)  # ids are hashes of what is indexed


def test_the_threshold_grows_with_the_corpus():
    assert threshold(5) == 3 and threshold(150) == 3 and threshold(1000) == 20


def test_seed_corpus_loses_no_line():
    # "نظر شما" and "ارسال نظر" each occur in one seed article only: a rule that removed them
    # would remove any line; they stay (the pages they came from are read by trafilatura now)
    raw = load_corpus(SEEDS, SEEDS.parent, boilerplate=False)
    load = load_corpus(SEEDS, SEEDS.parent)
    assert [d.text for d in load.documents] == [d.text for d in raw.documents]
    assert any(n.startswith("boilerplate: none") for n in load.notes)


def test_page_offsets_move_with_dropped_lines():
    pages = ["نظر شما\nصفحه یک متن اول است.", "نظر شما\nصفحه دو متن دوم است.", "صفحه سه متن سوم است."]
    doc = make_document("", "r.pdf", page_texts=pages)
    others = [make_document(f"سند {i}\nنظر شما\nمتن سند {i} است.", f"{i}.txt") for i in range(3)]
    (new, *_), report = remove_boilerplate([doc, *others])
    assert "نظر شما" not in new.text and report.lines == {"نظر شما": 4}
    for n, marker in enumerate(["صفحه یک", "صفحه دو", "صفحه سه"], start=1):
        assert new.page_at(new.text.index(marker)) == n
        assert new.text[new.pages[n - 1]:].startswith(marker)


def test_a_document_of_nothing_but_furniture_is_kept_whole():
    docs = [Document(doc_id(t), f"{i}.txt", "t", t, "fa") for i, t in enumerate(["نظر شما\nارسال نظر"] * 2 + ["نظر شما\nارسال نظر\nمتن"])]
    out, _ = remove_boilerplate(docs)
    assert out[0].text == "نظر شما\nارسال نظر" and out[2].text == "متن"


def test_lines_longer_than_raw_chars_as_written_are_never_counted():
    from rag.boilerplate import RAW_CHARS, remove_boilerplate
    from rag.corpus import make_document

    # tatweel is dropped by normalisation: both lines normalise to the short "نظر شما", but
    # only the one short as written is furniture (long lines are not normalised to be counted)
    stretched = "نظـ" + "ـ" * RAW_CHARS + "ر شما"
    docs = [make_document(f"نظر شما\n{stretched}\nخبر شماره {i} درباره موضوعی دیگر است.", f"corpus/{i}.txt")
            for i in range(5)]
    out, report = remove_boilerplate(docs)
    assert list(report.lines) == ["نظر شما"]
    assert all(stretched in d.text and not d.text.startswith("نظر شما") for d in out)
