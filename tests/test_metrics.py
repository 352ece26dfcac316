"""Metric functions on hand-built cases with known values."""

from __future__ import annotations

import math

import pytest

from rag.metrics import (
    abstention,
    best_threshold,
    citation_precision,
    citation_recall,
    containment,
    contains,
    gains,
    latency,
    mean,
    ndcg_at,
    percentile,
    recall_at,
    reciprocal_rank,
    token_f1,
)


# ---------------------------------------------------------------- mean
def test_mean_skips_undefined_values():
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean(x for x in (1.0, 0.0, 0.0)) == pytest.approx(1 / 3)  # any iterable
    assert mean([]) is None
    assert mean([None]) is None


# ---------------------------------------------------------------- retrieval
def test_gains_count_each_gold_document_once_at_its_first_rank():
    assert gains(["a", "b", "a", "c"], {"a", "c"}) == [1, 0, 0, 1]
    assert gains([], {"a"}) == []
    with pytest.raises(ValueError, match="gold document"):
        gains(["a"], set())


def test_single_gold_document_found_at_rank_four():
    ranked = ["x", "y", "x", "g", "z"]
    gold = {"g"}
    assert recall_at(ranked, gold, 1) == 0.0
    assert recall_at(ranked, gold, 3) == 0.0
    assert recall_at(ranked, gold, 4) == 1.0
    assert recall_at(ranked, gold, 10) == 1.0
    assert reciprocal_rank(ranked, gold) == 0.25
    assert reciprocal_rank(ranked, gold, k=3) == 0.0
    assert ndcg_at(ranked, gold) == pytest.approx(1 / math.log2(5))


def test_two_gold_documents_and_repeated_passages():
    ranked = ["a", "a", "b"]  # two passages of a, then one of b
    gold = {"a", "b"}
    assert recall_at(ranked, gold, 1) == 0.5
    assert recall_at(ranked, gold, 2) == 0.5  # the second passage of a adds nothing
    assert recall_at(ranked, gold, 3) == 1.0
    assert reciprocal_rank(ranked, gold) == 1.0
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(ranked, gold) == pytest.approx(dcg / ideal)  # 0.9197
    assert ndcg_at(["a", "b"], gold) == pytest.approx(1.0)


def test_nothing_retrieved_scores_zero():
    assert recall_at([], {"a"}, 10) == 0.0
    assert reciprocal_rank([], {"a"}) == 0.0
    assert ndcg_at(["x", "y"], {"a"}) == 0.0


def test_ndcg_ideal_is_capped_at_k():
    # three gold documents but k=2: finding two of them at ranks 1-2 is ideal
    assert ndcg_at(["a", "b", "c"], {"a", "b", "c"}, k=2) == pytest.approx(1.0)


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize(
    "text, answer, expected",
    [
        ("این تماس حدود ۵۰ دقیقه طول کشید.", "50 دقیقه", True),  # Persian vs ASCII digits
        ("این تماس حدود 50 دقیقه طول کشید.", "۵۰ دقیقه", True),
        ("التقى كيري وظريف في أحد فنادق نيويورك.", "احد فنادق نيويورك", True),  # hamza on alef
        ("بازگشت حوثی‌ها به میز مذاکره", "حوثیها", True),  # ZWNJ
        ("وزير خارجية عمان بدر بن حمد البوسعيدي", "بدر بن حمد البوسعیدی", True),  # Arabic vs Persian yeh
        ("مدة 34 عامًا من القطيعة", "34 عاما", True),  # tanween
        ("The airport closed for THREE hours.", "three hours", True),  # case
        ("They met in 2012.", "12", False),  # whole tokens only
        ("عباس عرقجي ومجيد تخت روانتشي،", "مجيد تخت روانتشي", True),  # joined proclitic و
        ("وبنيويورك اجتماع", "نيويورك", True),  # two proclitics
        ("عرقجي ومجيد", "عرقجي مجيد", False),  # only on the answer's first word
        ("ورد", "رد", False),  # a proclitic is not stripped from a word shorter than 3 letters
        ("سمجيد", "مجيد", False),  # س is no proclitic
        ("three of the hours", "three hours", False),  # a contiguous run
        ("anything", "", False),
        ("anything", "…", False),  # no tokens in the answer
    ],
)
def test_contains(text, answer, expected):
    assert contains(text, answer) is expected


def test_containment_takes_any_gold_answer():
    assert containment("ملاقات ۹۰ دقیقه طول کشید", ["۵۰ دقیقه", "۹۰ دقیقه"]) == 1.0
    assert containment("ملاقات ۹۰ دقیقه طول کشید", ["۵۰ دقیقه"]) == 0.0
    assert containment("", ["x"]) == 0.0
    assert containment("x", []) == 0.0


def test_token_f1_known_values():
    # pred: the cat sat on the mat (6 tokens, stop words kept); gold: cat on mat (3)
    # overlap 3 → P = 0.5, R = 1 → F1 = 2/3
    assert token_f1("The cat sat on the mat.", ["cat on mat"]) == pytest.approx(2 / 3)
    # the best of several gold answers counts
    assert token_f1("The cat sat on the mat.", ["dog", "the mat"]) == pytest.approx(2 * (2 / 6) * 1 / (2 / 6 + 1))
    assert token_f1("a b", ["c"]) == 0.0
    assert token_f1("", ["c"]) == 0.0
    assert token_f1("x", []) == 0.0
    # normalisation applies (Arabic kaf/yeh, Persian digits)
    assert token_f1("كيري ۵۰", ["کیری 50"]) == 1.0


def test_token_f1_counts_repeated_tokens_once_per_occurrence():
    # pred a a b, gold a b b: overlap min counts = a:1 + b:1 = 2 → P = R = 2/3
    assert token_f1("a a b", ["a b b"]) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- citations
def test_citation_precision_and_recall():
    assert citation_precision(["a", "b", "a"], {"a"}) == pytest.approx(2 / 3)
    assert citation_precision([], {"a"}) is None
    assert citation_recall(["a", "a"], {"a", "b"}) == 0.5
    assert citation_recall([], {"a"}) == 0.0
    assert citation_recall(["a", "b", "c"], {"a", "b"}) == 1.0
    with pytest.raises(ValueError):
        citation_recall(["a"], set())


# ---------------------------------------------------------------- abstention
def test_abstention_counts_and_rates():
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, False]
    s = abstention(abstained, answerable)
    assert (s.tp, s.fp, s.fn, s.tn) == (2, 1, 1, 1)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.wrong_rate == 0.5


def test_abstention_undefined_rates_are_none():
    never = abstention([False, False], [True, True])  # all answerable, never abstained
    assert never.precision is None and never.recall is None and never.f1 is None
    assert never.wrong_rate == 0.0
    missed = abstention([False], [False])  # an unanswerable question answered
    assert missed.precision is None and missed.recall == 0.0 and missed.f1 == 0.0
    assert missed.wrong_rate is None


def test_best_threshold_maximises_f1():
    evidence = [0.1, 0.2, 0.5, 0.6, 0.9]
    answerable = [False, False, True, False, True]
    cal = best_threshold(evidence, answerable)
    # abstaining below 0.75 catches all three unanswerable at the cost of one answerable: F1 6/7
    assert cal.threshold == pytest.approx(0.75)
    assert cal.scores.f1 == pytest.approx(6 / 7)
    assert (cal.scores.tp, cal.scores.fp, cal.scores.fn) == (3, 1, 0)
    assert cal.to_dict() == {"threshold": cal.threshold, "f1": cal.scores.f1, "precision": 0.75, "recall": 1.0,
                             "wrong_abstention_rate": 0.5}


def test_best_threshold_tie_prefers_fewer_wrong_abstentions():
    evidence = [0.1, 0.3, 0.4, 0.5, 0.9]
    answerable = [False, True, True, False, True]
    # t=0.2: tp1 fn1 → F1 2/3, no wrong abstention; t=0.7: tp2 fp2 → F1 2/3, two wrong
    cal = best_threshold(evidence, answerable)
    assert cal.threshold == pytest.approx(0.2)
    assert cal.scores.f1 == pytest.approx(2 / 3)
    assert cal.scores.wrong_rate == 0.0


def test_best_threshold_separable_sets_give_perfect_f1_and_may_abstain_on_everything():
    cal = best_threshold([0.9, 0.2, 0.8, 0.3], [True, False, True, False])
    assert cal.threshold == pytest.approx(0.55) and cal.scores.f1 == 1.0
    # mostly unanswerable, and the answerable one scores lowest: abstaining on all is best
    cal = best_threshold([0.1, 0.5, 0.6, 0.7], [True, False, False, False])
    assert cal.threshold > 0.7 and cal.scores.f1 == pytest.approx(6 / 7)


def test_best_threshold_needs_both_kinds_of_question():
    with pytest.raises(ValueError, match="both answerable and unanswerable"):
        best_threshold([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="both answerable and unanswerable"):
        best_threshold([0.1], [False])


# ---------------------------------------------------------------- latency
def test_latency_median_and_p95():
    assert latency([10, 20, 30, 40]) == (25.0, pytest.approx(38.5))  # p95: 30 + 0.85 * 10
    assert latency(list(range(1, 21))) == (10.5, pytest.approx(19.05))
    assert latency([7]) == (7.0, 7.0)
    assert latency([]) == (None, None)
    assert percentile([1, 2, 3], 0) == 1.0


def test_best_threshold_caps_wrong_abstentions():
    evidence = [0.1, 0.2, 0.5, 0.6, 0.9]
    answerable = [False, False, True, False, True]
    # the unconstrained best (0.75) abstains on one of two answerable questions
    cal = best_threshold(evidence, answerable, max_wrong=0.0)
    assert cal.scores.wrong_rate == 0.0
    assert cal.threshold == pytest.approx(0.35)
    assert (cal.scores.tp, cal.scores.fp, cal.scores.fn) == (2, 0, 1)
