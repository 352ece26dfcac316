from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk
from rag.corpus import Document, load_corpus
from tests.conftest import SEEDS


def _doc(text):
    return Document(id="d", source="x", title="", text=text, lang="fa")


def assert_in_order_and_complete(text, passages, overlap):
    """Passages are exact slices, in order, overlap by at most `overlap` characters, and
    lose no word: what lies between them is whitespace or an alphanumeric-free piece
    (a lone "* * *" line, which chunk() drops on purpose)."""
    for p in passages:
        assert text[p.start:p.end] == p.text and p.text.strip() == p.text
    for prev, p in pairwise(passages):
        assert prev.start < p.start and prev.end < p.end, (prev, p)
        assert p.start >= prev.end - overlap, f"{prev.end - p.start} characters overlap: {prev} {p}"
    bounds = [0, *(x for p in passages for x in (p.start, p.end)), len(text)]
    for gap_start, gap_end in zip(bounds[::2], bounds[1::2], strict=True):
        lost = text[gap_start:gap_end]
        assert not any(ch.isalnum() for ch in lost), f"lost {lost!r} at {gap_start}"


def test_every_seed_passage_is_an_exact_slice():
    for doc in load_corpus(SEEDS, SEEDS.parent).documents:
        passages = chunk(doc, 800)
        assert passages, doc.source
        for p in passages:
            assert doc.text[p.start:p.end] == p.text
            assert len(p.text) <= 800
        # passages cover the document in order, without overlap, losing no word
        assert_in_order_and_complete(doc.text, passages, overlap=0)
        assert " ".join(p.text for p in passages).split() == doc.text.split()


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


def test_a_repeated_sentence_gets_its_own_offsets():
    # news pages repeat sentences; the last one here is a piece of its own and must not
    # be placed on its first occurrence inside the previous passage
    text = ("Snow fell in Geneva. The airport closed. "
            "Trains stopped too and many travellers waited overnight. "
            "The airport closed.")
    for overlap in (0, 10, 30):
        passages = chunk(_doc(text), 100, overlap)
        assert [p.text for p in passages][-1] == "The airport closed."
        assert passages[-1].end == len(text), (overlap, passages)
        assert_in_order_and_complete(text, passages, overlap)


# text from a few words and separators repeats itself, as real documents do
WORDS = ["The airport closed.", "Snow fell", "in Geneva", "پوتین و ترامپ", "گفتگو کردند.", "واستمر الاجتماع",
         "ساعة؟", "a", "* * *", ",", ".", " ", "  ", "\n", "\n\n", "\t"]
REPETITIVE = st.lists(st.sampled_from(WORDS), min_size=20, max_size=300).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(min_size=1, max_size=1500), REPETITIVE),
       st.integers(min_value=100, max_value=400), st.integers(min_value=0, max_value=99))
def test_passages_are_exact_ordered_and_complete_for_any_text(text, size, overlap):
    assert_in_order_and_complete(text, chunk(_doc(text), size, overlap), overlap)
