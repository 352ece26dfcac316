"""Evaluation metrics as pure functions over plain values.

Per-question functions take document ids in rank order, gold ids, answer text and gold
strings, and return a number; `mean` averages them over a set. Abstention and latency are
set-level: counts with their rates, and percentiles.

Retrieval relevance is per document: a ranked passage counts when its document is a
gold document not already counted higher up, so several passages of one gold
document never count twice and Recall@k is the share of gold documents found.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.text import tokens


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (None: the metric does not apply); None when none is defined."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


# ---------------------------------------------------------------- retrieval
def gains(ranked: Sequence[str], gold: Collection[str]) -> list[int]:
    """1 at each rank holding a gold document for the first time, else 0."""
    if not gold:
        raise ValueError("retrieval metrics need at least one gold document")
    seen: set[str] = set()
    out = []
    for doc in ranked:
        hit = doc in gold and doc not in seen
        seen.add(doc)
        out.append(int(hit))
    return out


def recall_at(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """Share of the gold documents with a passage in the top k."""
    return sum(gains(ranked[:k], gold)) / len(set(gold))


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """1 / rank of the first passage from a gold document in the top k, else 0."""
    for rank, g in enumerate(gains(ranked[:k], gold), start=1):
        if g:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """Binary nDCG@k; the ideal ranking puts every gold document first."""
    dcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains(ranked[:k], gold), start=1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(set(gold)), k) + 1))
    return dcg / ideal


# ---------------------------------------------------------------- answers
def answer_tokens(text: str) -> list[str]:
    """Tokens for answer matching: Persian/Arabic-normalised, stop words kept."""
    return tokens(text, stopwords=True)


# Arabic proclitics written joined to the next word: و ف ب ل ک (normalised kaf)
_PROCLITICS = frozenset("وفبلک")


def _first_token_matches(tok: str, gold: str) -> bool:
    """Equal, or gold with one or two joined proclitics in front ("ومجيد" for "مجيد")."""
    extra = len(tok) - len(gold)
    return tok == gold or (len(gold) >= 3 and 1 <= extra <= 2 and tok.endswith(gold)
                           and all(ch in _PROCLITICS for ch in tok[:extra]))


def contains(text: str, answer: str) -> bool:
    """Whether the answer's tokens occur in text as a contiguous run (after normalisation).

    Whole tokens only ("12" is not in "2012"), except that the answer's first word may
    carry a joined Arabic proclitic in the text (و ف ب ل ک, e.g. "ومجيد" for "مجيد").
    """
    needle, hay = answer_tokens(answer), answer_tokens(text)
    if not needle:
        return False
    n = len(needle)
    return any(_first_token_matches(hay[i], needle[0]) and hay[i + 1:i + n] == needle[1:]
               for i in range(len(hay) - n + 1))


def containment(text: str, answers: Sequence[str]) -> float:
    """1.0 when any gold answer occurs in the answer text, else 0.0."""
    return float(any(contains(text, a) for a in answers))


def token_f1(text: str, answers: Sequence[str]) -> float:
    """SQuAD-style token F1 against the best-matching gold answer (0 when there is none)."""
    pred = Counter(answer_tokens(text))
    best = 0.0
    for a in answers:
        gold = Counter(answer_tokens(a))
        common = sum((pred & gold).values())
        if common:
            p, r = common / sum(pred.values()), common / sum(gold.values())
            best = max(best, 2 * p * r / (p + r))
    return best


# ---------------------------------------------------------------- citations
def citation_precision(cited: Sequence[str], gold: Collection[str]) -> float | None:
    """Share of citations that point into a gold document; None when nothing is cited."""
    return sum(d in gold for d in cited) / len(cited) if cited else None


def citation_recall(cited: Sequence[str], gold: Collection[str]) -> float:
    """Share of the gold documents cited at least once."""
    if not gold:
        raise ValueError("citation recall needs at least one gold document")
    return len(set(cited) & set(gold)) / len(set(gold))


# ---------------------------------------------------------------- abstention
@dataclass(frozen=True)
class AbstentionScores:
    """Abstaining is the positive class: tp = abstained on an unanswerable question."""

    tp: int
    fp: int  # wrong abstentions (on answerable questions)
    fn: int  # answered an unanswerable question
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else None

    @property
    def wrong_rate(self) -> float | None:
        """Share of answerable questions on which it abstained."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None


def abstention(abstained: Sequence[bool], answerable: Sequence[bool]) -> AbstentionScores:
    tp = fp = fn = tn = 0
    for a, ok in zip(abstained, answerable, strict=True):
        if a and not ok:
            tp += 1
        elif a:
            fp += 1
        elif not ok:
            fn += 1
        else:
            tn += 1
    return AbstentionScores(tp, fp, fn, tn)


@dataclass(frozen=True)
class Calibration:
    threshold: float  # abstain when evidence < threshold
    scores: AbstentionScores

    def to_dict(self) -> dict:
        """The threshold and its abstention scores, as calibration.json files keep them."""
        s = self.scores
        return {"threshold": self.threshold, "f1": s.f1, "precision": s.precision, "recall": s.recall,
                "wrong_abstention_rate": s.wrong_rate}


def best_threshold(evidence: Sequence[float], answerable: Sequence[bool], max_wrong: float = 1.0) -> Calibration:
    """The threshold with the best abstention F1 (ties: fewer wrong abstentions, then lower),
    among those that wrongly abstain on at most `max_wrong` of the answerable questions.

    Candidates are the midpoints between consecutive distinct evidence values, plus one
    below all values (never abstain) and one above (always abstain).
    """
    if len(evidence) != len(answerable):
        raise ValueError("evidence and answerable differ in length")
    if all(answerable) or not any(answerable):
        raise ValueError("calibration needs both answerable and unanswerable questions")
    values = sorted(set(float(e) for e in evidence))
    candidates = [values[0]] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1e-6]
    best: Calibration | None = None
    for t in candidates:
        s = abstention([e < t for e in evidence], answerable)
        if s.wrong_rate > max_wrong:
            continue
        if best is None or (s.f1, -s.wrong_rate) > (best.scores.f1, -best.scores.wrong_rate):
            best = Calibration(t, s)
    assert best is not None
    return best


# ---------------------------------------------------------------- latency
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100, linear interpolation); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def latency(ms: Sequence[float]) -> tuple[float | None, float | None]:
    """(median, p95) of per-question latencies."""
    return percentile(ms, 50), percentile(ms, 95)
