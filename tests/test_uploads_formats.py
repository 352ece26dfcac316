"""The upload box takes every supported type, with clear refusals."""

import pytest

from rag.corpus import SUFFIXES
from tests.conftest import ROOT
from ui.uploads import UploadError, add_upload

DATA = ROOT / "tests" / "data"


def test_every_format_is_accepted():
    assert {".pdf", ".docx", ".html", ".htm", ".txt", ".md", ".jsonl"} <= set(SUFFIXES)


@pytest.mark.parametrize("fixture", ["pdf/ar_port.pdf", "docx/fa_metro.docx", "pages/en_wind.html"])
def test_pdf_word_and_page_uploads_are_added(tmp_path, fixture):
    added = add_upload(fixture.split("/")[-1], (DATA / fixture).read_bytes(), tmp_path / "corpus", tmp_path)
    assert added.new and len(added.documents) == 1 and added.documents[0].date


def test_image_only_pdf_is_refused_saying_it_has_no_text_layer(tmp_path):
    with pytest.raises(UploadError, match="no text layer"):
        add_upload("scan.pdf", (DATA / "pdf" / "scan.pdf").read_bytes(), tmp_path / "corpus", tmp_path)
    assert not any((tmp_path / "corpus").iterdir())


def test_broken_word_file_is_refused(tmp_path):
    with pytest.raises(UploadError, match="cannot read this DOCX"):
        add_upload("x.docx", b"PK\x03\x04 broken" * 20, tmp_path / "corpus", tmp_path)
