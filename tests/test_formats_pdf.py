"""PDFs: reading order, Arabic-script repair, pages, dates, scans and broken files."""

import json

import pytest

from rag.corpus import load_corpus, read_file
from rag.formats.arabic_pdf import is_reversed, join_lines, repair_lines, unreverse, unshape
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data"
LABELS = [x for x in json.loads((DATA / "labels.json").read_text("utf-8"))["pdf"] if x["pages"]]


def squash(t: str) -> str:
    return " ".join(t.split())


@pytest.mark.parametrize("label", LABELS, ids=[x["file"] for x in LABELS])
def test_pdf_text_equals_what_was_written_page_by_page(label):
    docs, skipped = read_file(DATA / label["file"], label["file"])
    assert skipped == [] and len(docs) == 1
    d = docs[0]
    assert d.extractor == "pdfplumber" and d.title == label["title"] and d.date == label["date"]
    assert len(d.pages) == len(label["pages"]) and d.pages[0] == 0
    ends = [*d.pages[1:], len(d.text)]
    for n, (start, end, paras) in enumerate(zip(d.pages, ends, label["pages"], strict=True), start=1):
        assert squash(d.text[start:end]) == squash(" ".join(paras))
        for p in paras:  # every paragraph whole (lines joined), on its page
            assert d.page_at(d.text.index(p)) == n


def test_scan_without_text_layer_says_so(tmp_path):
    docs, skipped = read_file(DATA / "pdf" / "scan.pdf", "scan.pdf")
    assert docs == [] and "no text layer" in skipped[0].reason


def test_broken_pdf_is_reported_and_nothing_else_is_lost(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.pdf").write_bytes((DATA / "pdf" / "ar_port.pdf").read_bytes())
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"garbage " * 200)
    load = load_corpus(corpus, tmp_path)
    assert [d.source for d in load.documents] == ["corpus/good.pdf"]
    assert "cannot read this PDF file" in load.skipped[0].reason


def test_presentation_forms_become_letters():
    # "سلام" as old PDF tools write it: isolated/initial/medial/final forms
    assert unshape("\ufeb3\ufefc\ufee1") == "سلام"
    assert unshape("\ufe8d\ufedf\ufecc\ufed8\ufe92\ufe94") == "العقبة"
    assert unshape("Latin 123") == "Latin 123"


def test_visual_lines_are_put_back_in_reading_order():
    logical = "زمین‌لرزه ۵٫۲ ریشتری (بندرعباس) در ساعت 10:30 و GMT بود."
    visual = "".join(reversed(logical))  # what a visual-order extractor gives, numbers reversed too …
    for number in ("۵٫۲", "10:30", "GMT"):  # … except numbers and Latin words, which stay left to right
        visual = visual.replace(number[::-1], number)
    visual = visual.translate(str.maketrans("()", ")("))
    assert unreverse(visual) == logical


def test_reversal_is_decided_by_common_words():
    fa = ["سد کرج به کمترین حجم در ده سال رسید و این را مدیر گفت."]
    ar = ["أعلنت الشركة أن الميناء سجل رقما قياسيا في مناولة الحاويات من الشهر."]
    for lines in (fa, ar):
        assert not is_reversed(lines)
        flipped = [line[::-1] for line in lines]
        assert is_reversed(flipped)
        assert repair_lines(flipped) == lines
    assert not is_reversed(["English only, nothing to decide."])


def test_lines_of_a_paragraph_are_joined():
    assert join_lines(["The bridge re-", "opened on Monday af-", "ter repairs."]) == \
        "The bridge reopened on Monday after repairs."  # a line-end hyphen is taken as a break
    assert join_lines(["کارشناسان می\u200c", "گویند که آب کم است."]) == "کارشناسان می\u200cگویند که آب کم است."


def test_pdf_answers_with_citations_inside_the_page(tiny_project):
    from rag.embedding import HashEmbedder
    from rag.engine import Engine

    (tiny_project.corpus_dir / "dam.pdf").write_bytes((DATA / "pdf" / "fa_dam.pdf").read_bytes())
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    ans = engine.ask("کارشناسان درباره قطعی آب تهران در تابستان چه هشدار داده‌اند")
    cites = [c for c in ans.citations if c.source.endswith("dam.pdf")]
    assert cites
    doc = engine.index.documents[cites[0].doc_id]
    assert doc.pages and doc.date == "2025-06-14"
    for c in cites:
        assert doc.text[c.start:c.end] == c.text
    page_of = {c.text: doc.page_at(c.start) for c in cites}
    assert any(p == 2 for t, p in page_of.items() if "تابستان" in t)
