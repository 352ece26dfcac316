"""Saved news pages: the article through trafilatura, dates, the visible-text fallback."""

import json

import pytest

from rag.build import build_index
from rag.corpus import load_corpus, read_file
from rag.formats.dates import date_line
from rag.formats.html import extract, headline_date, page_date
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data"
PAGES = json.loads((DATA / "labels.json").read_text("utf-8"))["pages"]
SHORT = [p for p in PAGES if str(p["layout"]).startswith("short")]


@pytest.mark.parametrize("label", PAGES, ids=[p["file"] for p in PAGES])
def test_labelled_page_keeps_the_article_drops_the_furniture_and_finds_the_date(label):
    docs, skipped = read_file(DATA / label["file"], label["file"])
    assert skipped == [] and len(docs) == 1
    doc = docs[0]
    assert doc.extractor == "trafilatura"
    flat = " ".join(doc.text.split())
    for paragraph in label["article"]:
        assert " ".join(paragraph.split()) in flat  # verbatim, ZWNJ included
    assert doc.title == label["title"]
    assert doc.date[:10] == label["date"]
    assert doc.url.startswith("https://news.example/")
    # the comment form, menus and related links are gone (the "read also" line inside an
    # article body, layout 4, is the one piece of furniture trafilatura keeps)
    for noise in label["noise"]:
        if label["layout"] == 4 and noise in (label["noise"][-1],):
            continue
        if noise in label["title"] or any(noise in p for p in label["article"]):
            continue
        assert noise not in doc.text or (label["layout"] == 4 and noise in doc.text.split("\n")[3]), noise


@pytest.mark.parametrize("label", SHORT, ids=[p["file"] for p in SHORT])
def test_short_page_is_indexed_as_its_article_alone_with_its_title_and_date(label):
    """A short news item (about 230 characters of body, under trafilatura's own 250-character
    minimum) among a menu, ads, related links, a comment form and a footer, marked up as such
    or all in plain <div>s: what is read is the article's paragraphs (with at most its headline
    and date line), none of the rest."""
    docs, skipped = read_file(DATA / label["file"], label["file"])
    assert skipped == [] and len(docs) == 1
    doc = docs[0]
    article = [" ".join(p.split()) for p in label["article"]]
    lines = [" ".join(line.split()) for line in doc.text.split("\n") if line.strip()]
    assert [p for p in article if p not in lines] == []
    assert [line for line in lines if line not in article and line != label["title"] and not date_line(line)] == []
    assert (doc.extractor, doc.title, doc.date[:10]) == ("trafilatura", label["title"], label["date"])


def test_seed_style_furniture_lines_are_not_indexed(tmp_path):
    label = next(p for p in PAGES if p["file"] == "pages/fa_dam.html")
    doc = read_file(DATA / label["file"], "x.html")[0][0]
    assert "نظر شما" not in doc.text and "ارسال نظر" not in doc.text


def test_zwnj_survives_extraction():
    html = ("<html><body><article><h1>خبر</h1>" + "<p>این گزارش می&zwnj;گوید که بارش‌ها کم شده‌اند و مصرف باید "
            "کاهش یابد. کارشناسان می‌گویند که وضعیت منابع آب در تابستان سخت‌تر خواهد شد.</p>" * 3
            + "</article></body></html>")
    text = extract(html).text
    assert "می\u200cگوید" in text and "بارش\u200cها" in text and "سخت\u200cتر" in text


def test_page_without_an_article_falls_back_to_visible_text_and_the_build_report_says_so(tiny_project):
    from rag.embedding import HashEmbedder

    page = tiny_project.corpus_dir / "links.html"
    page.write_text("<html><head><title>پیوندها</title></head><body><aside><p>نقشه سایت و تماس با ما</p></aside>"
                    "<footer>کلیه حقوق محفوظ است</footer></body></html>", "utf-8")
    ex = extract(page.read_text("utf-8"))  # nothing but an aside and a footer: trafilatura finds no article
    assert ex.fallback and ex.extractor == "html visible text" and "نقشه سایت" in ex.text
    load = load_corpus(tiny_project.corpus_dir, tiny_project.project_root)
    assert any("corpus/links.html" in n and "visible text" in n for n in load.notes)
    report = build_index(tiny_project, HashEmbedder(256))
    assert any("corpus/links.html" in n for n in report.notes)


def test_date_elements_are_read_in_persian_and_arabic():
    assert page_date('<div><span class="news-date">۲۴ خرداد ۱۴۰۴ - ۱۰:۳۰</span></div>') == "2025-06-14"
    assert page_date('<p class="meta">تاريخ النشر: ١٨ مايو ٢٠٢٥</p>') == "2025-05-18"
    assert page_date('<time datetime="2024-10-15T08:00:00+00:00">15 Oct</time>').startswith("2024-10-15")
    assert page_date('<div class="content">' + "متن طولانی " * 20 + "۱۴۰۴/۰۳/۲۴</div>") == ""  # not a date element


def test_a_date_line_just_under_the_headline_is_the_pages_date():
    page = "صفحه اصلی\nسیاسی\nخبر کوتاه\nتاریخ انتشار: ۱۴ تیر ۱۴۰۴ - ۱۰:۳۰\nمتن خبر"
    assert headline_date(page, "خبر کوتاه") == "2025-07-05"
    assert headline_date(page, "عنوانی دیگر") == ""  # no such headline on the page
    assert headline_date("خبر کوتاه\nمتن خبر\nمتن دیگر\n۱۴ تیر ۱۴۰۴", "خبر کوتاه") == ""  # not just under it
    assert headline_date("خبر کوتاه\nاین طرح از ۱۴ تیر ۱۴۰۴ اجرا می‌شود.", "خبر کوتاه") == ""  # inside a sentence


def test_page_answers_with_offsets_into_the_extracted_text(tiny_project):
    from rag.embedding import HashEmbedder
    from rag.engine import Engine

    for p in PAGES[:3]:
        (tiny_project.corpus_dir / p["file"].split("/")[-1]).write_bytes((DATA / p["file"]).read_bytes())
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    ans = engine.ask("ایستگاه میدان صنعت خط هفت مترو چند کیلومتر")
    assert ans.citations
    for c in ans.citations:
        doc = engine.index.documents[c.doc_id]
        assert doc.text[c.start:c.end] == c.text
    assert any(c.source.endswith("fa_metro.html") for c in ans.citations)
