from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk
from rag.corpus import Document, load_corpus
from tests.conftest import SEEDS


def _doc(text):
    return Document(id="d", source="x", title="", text=text, lang="fa")


def test_every_seed_passage_is_an_exact_slice():
    for doc in load_corpus(SEEDS, SEEDS.parent).documents:
        passages = chunk(doc, 800)
        assert passages, doc.source
        for p in passages:
            assert doc.text[p.start:p.end] == p.text
            assert len(p.text) <= 800
        # passages cover the document in order, without overlap, losing no word
        assert [p.start for p in passages] == sorted(p.start for p in passages)
        joined = " ".join(p.text for p in passages).split()
        assert joined == doc.text.split() or len(joined) >= len(doc.text.split()) - 2


def test_cuts_fall_on_sentence_ends_and_never_inside_a_word():
    text = "این جمله اول است. " * 30 + "آیا این پرسش است؟ " * 30
    for p in chunk(_doc(text.strip()), 200):
        assert p.text[-1] in ".؟", p.text[-20:]
        assert p.start == 0 or text[p.start - 1] == " "


def test_long_text_without_punctuation_is_cut_at_spaces():
    text = " ".join(f"واژه{i}" for i in range(500))
    passages = chunk(_doc(text), 300)
    assert len(passages) > 5
    for p in passages:
        assert len(p.text) <= 300
        assert p.start == 0 or text[p.start - 1] == " "
        assert p.end == len(text) or text[p.end] == " "


def test_ids_are_stable():
    doc = _doc("جمله یک. جمله دو.")
    assert [p.id for p in chunk(doc)] == [p.id for p in chunk(doc)]


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=1500), st.integers(min_value=100, max_value=400))
def test_offsets_map_back_for_any_unicode(text, size):
    doc = _doc(text)
    for p in chunk(doc, size):
        assert doc.text[p.start:p.end] == p.text
        assert p.text.strip() == p.text
