"""Word files: paragraphs in order, headings as titles, tables as text, broken files reported."""

import io
import json

import docx
import pytest

from rag.corpus import load_corpus, read_file
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data"
LABELS = json.loads((DATA / "labels.json").read_text("utf-8"))["docx"]


@pytest.mark.parametrize("label", LABELS, ids=[x["file"] for x in LABELS])
def test_labelled_word_file(label):
    docs, skipped = read_file(DATA / label["file"], label["file"])
    assert skipped == [] and len(docs) == 1
    d = docs[0]
    assert d.extractor == "python-docx" and d.title == label["title"]
    assert d.date == label["date"]  # the date line, not the file's creation date (2023-01-01)
    positions = [d.text.index(p) for p in label["article"]]
    assert positions == sorted(positions)  # in document order
    for row in label["table_rows"]:
        assert row in d.text.split("\n")
    assert d.text.index(label["article"][-1]) < d.text.index(label["table_rows"][0])


def test_heading_is_the_title_without_core_title_and_creation_date_is_the_fallback(tmp_path):
    d = docx.Document()
    d.core_properties.created = __import__("datetime").datetime(2024, 5, 6, 7, 8)
    d.add_paragraph("A note before the heading.")
    d.add_heading("Quarterly report", level=1)
    d.add_paragraph("Revenue rose by four percent in the quarter.")
    path = tmp_path / "r.docx"
    d.save(path)
    doc = read_file(path, "r.docx")[0][0]
    assert doc.title == "Quarterly report" and doc.date == "2024-05-06"


def test_broken_and_empty_word_files_are_reported_and_nothing_else_is_lost(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("یک سند خوب با متن کافی.", "utf-8")
    (corpus / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    buf = io.BytesIO()
    docx.Document().save(buf)
    (corpus / "empty.docx").write_bytes(buf.getvalue())
    load = load_corpus(corpus, tmp_path)
    assert [d.source for d in load.documents] == ["corpus/good.txt"]
    reasons = {s.source: s.reason for s in load.skipped}
    assert "cannot read this DOCX file" in reasons["corpus/broken.docx"]
    assert reasons["corpus/empty.docx"] == "no text in this Word file"
