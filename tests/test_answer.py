import math

import pytest

from rag.answer import NO_ANSWER, QuestionError, named_sources, select
from rag.chunking import Passage
from rag.retrieval import Hit
from rag.scorer import DENSE_SCAN, answer_pool, idf_overlap, local_weights
from rag.text import tokens


def test_idf_overlap_hand_computed():
    df = {"_n": 10, "پوتین": 1, "تماس": 4}
    w_p, w_t = math.log(1 + 10 / 2), math.log(1 + 10 / 5)
    assert idf_overlap(["پوتین", "تماس"], {"پوتین"}, df) == pytest.approx(w_p / (w_p + w_t))
    assert idf_overlap(["پوتین", "تماس"], {"پوتین", "تماس", "x"}, df) == pytest.approx(1.0)
    assert idf_overlap([], {"x"}, df) == 0.0
    assert idf_overlap(["unseen"], {"x"}, df) == 0.0


def test_local_weights_ignore_the_words_every_candidate_shares():
    # the topic word is in every candidate sentence, so it cannot tell them apart;
    # the word asked about is in one of them only
    sents = [set(tokens(s)) for s in ("رونالدینیو در بارسلونا بازی کرد.",
                                      "رونالدینیو برزیلی است.",
                                      "به رونالدینیو لقب شاعر فوتبال داده اند.")]
    df = {"_n": 100, tokens("رونالدینیو")[0]: 3, tokens("لقب")[0]: 3}
    w = local_weights(set(tokens("لقب رونالدینیو چیست")), sents, df)
    assert w[tokens("رونالدینیو")[0]] == 0.0
    assert w[tokens("لقب")[0]] == pytest.approx(math.log(1 + 100 / 4) * math.log(4 / 2))


def _hits(dense: list[float]) -> list[Hit]:
    return [Hit(Passage(f"p{i}", f"d{i}", 0, 1, "x"), 1.0 - i / 100, d, None, i) for i, d in enumerate(dense)]


def test_answer_pool_adds_the_passage_closest_by_cosine():
    # fused ranking put the best-cosine passage (e.g. one in another language, with no
    # lexical match) fifth: it joins the top three, ranked first by cosine
    pool = answer_pool(_hits([0.40, 0.30, 0.35, 0.20, 0.55, 0.10]), 3)
    assert [(r, h.index) for r, h in pool] == [(2, 0), (4, 1), (3, 2), (1, 4)]
    # already among the top three: nothing added
    pool = answer_pool(_hits([0.40, 0.60, 0.35, 0.20]), 3)
    assert [(r, h.index) for r, h in pool] == [(2, 0), (1, 1), (3, 2)]
    # only the first DENSE_SCAN hits are looked at
    far = [0.4, 0.3, 0.2] + [0.1] * (DENSE_SCAN - 3) + [0.9]
    assert [h.index for _, h in answer_pool(_hits(far), 3)] == [0, 1, 2]


def test_answer_is_verbatim_sentences_with_citations(tiny_engine):
    ans = tiny_engine.ask("این تماس چند دقیقه طول کشید؟")
    assert not ans.abstained
    assert ans.citations and ans.citations[0].n == 1
    for c in ans.citations:
        doc = tiny_engine.index.documents[c.doc_id]
        assert doc.text[c.start:c.end] == c.text
        assert f"{c.text} [{c.n}]" in ans.text
        assert c.source == doc.source and c.title == doc.title
        assert c.passage_start <= c.start < c.end <= c.passage_end
    assert "۵۰ دقیقه" in ans.text


def test_to_dict_matches_the_cli_shape(tiny_engine):
    d = tiny_engine.ask("Geneva snow airport").to_dict(tiny_engine.index)
    assert {"question", "answer", "abstained", "citations", "passages", "timings_ms"} <= set(d)
    assert set(d["citations"][0]) == {"n", "doc_id", "source", "title", "start", "end", "text", "date", "page"}
    assert {"doc_id", "source", "start", "end", "text", "score"} <= set(d["passages"][0])
    assert d["citations"][0]["source"] == "corpus/en_weather.md"


def test_abstains_below_threshold_in_the_question_language(tiny_engine):
    s = tiny_engine.settings.replace(abstain_threshold=5.0)  # nothing can reach it
    for q, lang in [("تماس پوتین چقدر طول کشید؟", "fa"), ("كم استغرق الاجتماع؟", "ar"), ("How long was the call?", "en")]:
        ans = tiny_engine.ask(q, settings=s)
        assert ans.abstained and ans.citations == []
        assert ans.text == NO_ANSWER[lang]
        assert ans.hits, "the closest passages are still offered"


def test_threshold_decides(tiny_engine):
    ev = tiny_engine.ask("Geneva snow airport").evidence
    assert not tiny_engine.ask("Geneva snow airport", settings=tiny_engine.settings.replace(abstain_threshold=ev - 1e-6)).abstained
    assert tiny_engine.ask("Geneva snow airport", settings=tiny_engine.settings.replace(abstain_threshold=ev + 1e-6)).abstained


@pytest.mark.parametrize("q", ["", "   \n\t "])
def test_empty_question_is_an_error(tiny_engine, q):
    with pytest.raises(QuestionError, match="empty"):
        tiny_engine.ask(q)


def test_overlong_question_is_an_error(tiny_engine):
    with pytest.raises(QuestionError, match="too long"):
        tiny_engine.ask("پرسش " * 3000)



def test_select_skips_a_runner_up_that_repeats_a_chosen_sentence_in_other_words(tiny_project, monkeypatch):
    """An article that says one thing twice (e.g. a lead and a quote): the second
    wording adds nothing and is not shown, even when its vector is not a near-copy."""
    import rag.answer as answer_mod
    from rag.embedding import HashEmbedder
    from rag.engine import Engine

    (tiny_project.corpus_dir / "twice.txt").write_text(
        "Putin and Trump held a phone call on Saturday about the war in the region.\n"
        "On Saturday Putin and Trump held a long phone call about the war in the region.\n"
        "The call lasted fifty minutes.", "utf-8")
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    idx = engine.index
    hit = next(h for h in engine.ask("Putin Trump phone call Saturday").hits if idx.documents[h.passage.doc_id].source.endswith("twice.txt"))
    first, again, other = list(idx.passage_sentences(hit.index))
    scored = [(3.0, first, hit), (2.9, again, hit), (2.8, other, hit)]
    settings = tiny_project.replace(max_sentences=3)
    passed = {first, again, other}  # all three pass the judge's threshold
    monkeypatch.setattr(answer_mod, "REDUNDANT_COSINE", 1.01)  # only the word test can catch it
    assert [j for _, j, _ in select(scored, idx, settings, passed)] == [first, other]
    monkeypatch.setattr(answer_mod, "REDUNDANT_OVERLAP", 1.01)
    assert [j for _, j, _ in select(scored, idx, settings, passed)] == [first, again, other]

def test_without_a_judge_select_takes_close_runners_up_only(tiny_engine):
    idx = tiny_engine.index
    s = tiny_engine.settings
    hit = tiny_engine.ask("پوتین ترامپ").hits[0]
    js = list(idx.passage_sentences(hit.index))
    assert len(js) >= 2
    scored = [(0.9, js[0], hit), (0.88, js[1], hit), (0.5, js[-1], hit)]
    chosen = select(scored, idx, s)  # within DEFAULT_MARGIN of the best
    assert [j for _, j, _ in chosen] == [js[0], js[1]]
    assert len(select(scored, idx, s.replace(max_sentences=1))) == 1
    # the same sentence twice is not repeated
    assert len(select([(0.9, js[0], hit), (0.9, js[0], hit)], idx, s)) == 1
    assert select([], idx, s) == []


def test_after_the_judge_a_runner_up_must_pass_its_threshold_however_far_behind(tiny_engine):
    idx = tiny_engine.index
    s = tiny_engine.settings
    hit = tiny_engine.ask("پوتین ترامپ").hits[0]
    js = list(idx.passage_sentences(hit.index))
    scored = [(20.0, js[0], hit), (14.0, js[1], hit)]  # the judge's log-odds: far apart, no margin applies
    assert [j for _, j, _ in select(scored, idx, s, {js[0], js[1]})] == js[:2]
    assert [j for _, j, _ in select(scored, idx, s, {js[0]})] == js[:1]  # the second one did not pass


def test_a_question_that_names_its_sources_language_keeps_to_those_documents(tiny_engine):
    idx = tiny_engine.index
    by_lang = {d.lang: d.id for d in idx.documents.values()}
    assert set(by_lang) == {"fa", "ar", "en"}
    ans = tiny_engine.ask("According to the Arabic report, how long did the meeting last?")
    assert ans.source_langs == ("ar",)
    assert ans.hits and {h.passage.doc_id for h in ans.hits} == {by_lang["ar"]}
    assert {c.doc_id for c in ans.citations} <= {by_lang["ar"]}
    assert ans.to_dict(idx)["source_langs"] == ["ar"]
    plain = tiny_engine.ask("how long did the meeting last?")
    assert plain.source_langs == () and len({h.passage.doc_id for h in plain.hits}) > 1
    # a follow-up's previous documents: those in the named language if any, else all in it
    assert named_sources(idx, "and in the Arabic report?", (by_lang["fa"], by_lang["ar"]), True) == \
        (frozenset({by_lang["ar"]}), True, ("ar",))
    assert named_sources(idx, "and in the Arabic report?", (by_lang["fa"],), True) == \
        (frozenset({by_lang["ar"]}), True, ("ar",))
    # nothing named, or every language of the corpus named: left as it was
    assert named_sources(idx, "and then?", (by_lang["fa"],), True) == ((by_lang["fa"],), True, ())
    assert named_sources(idx, "the Persian and Arabic reports, and the English article?", (), False) == ((), False, ())
    # "both" of two sources, one named by its outlet: not kept to the one named by its language
    both = tiny_engine.ask("According to both the Tehran Times report and the Arabic report, how long did the meeting last?")
    assert both.source_langs == () and len({h.passage.doc_id for h in both.hits}) > 1


def test_a_sentence_of_under_three_content_words_is_never_an_answer(tiny_project, monkeypatch):
    """Site furniture left in an article ("نظر شما", "ارسال نظر") is a sentence of its own:
    a question close to it (here, its own words) must not be answered with it."""
    import rag.scorer as scorer_mod
    from rag.embedding import HashEmbedder
    from rag.engine import Engine

    (tiny_project.corpus_dir / "furniture.txt").write_text(
        "وزیر خارجه در نیویورک با همتای خود دیدار کرد و درباره مذاکرات گفتگو کرد.\n"
        "نظر شما\nارسال نظر", "utf-8")
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    settings = tiny_project.replace(abstain_threshold=-100.0)
    ans = engine.ask("ارسال نظر شما", settings=settings)
    assert ans.sentences and not any(s.strip() in ("نظر شما", "ارسال نظر") for s in ans.sentences), ans.sentences
    monkeypatch.setattr(scorer_mod, "MIN_ANSWER_WORDS", 0)  # the rule is what keeps them out
    ans = engine.ask("ارسال نظر شما", settings=settings)
    assert ans.sentences[0].strip() in ("نظر شما", "ارسال نظر"), ans.sentences
