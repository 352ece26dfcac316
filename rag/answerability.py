"""Answerability: does the retrieved text answer the question at all?

The sentence scorer (rag.answer) ranks candidate sentences; its best score alone made a
poor abstention signal — lexical features vanish across languages, so a cross-lingual
question scored lower than an off-topic one in the question's own language. This module
decides at the level of the question, from signals the score lacks:

- how well the best sentence and its passage cover the question's words, weighted by
  rarity (names and rare terms), and its numbers (digits are language-independent);
- how the best candidate stands out: its cosine, the gap to the runner-up from another
  document, how peaked the dense ranking is;
- whether dense and lexical retrieval agree on the top passage;
- whether the best sentence is in another language than the question (lexical signals
  then say nothing, and the model leans on the dense ones).

A small logistic model turns them into a log-odds that the corpus answers the question;
the answer abstains below a threshold chosen per language pair (question language >
document language, e.g. "en>ar"), with a global threshold for pairs not calibrated.
Model and thresholds are fitted by eval/fit_answerability.py on the dev sets and ship
in rag/calibration.json; `RAG_ANSWERABILITY=off` falls back to the scorer's threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rag.fitting import fit_standardised, standardised_from_dict, standardised_to_dict
from rag.retrieval import lexical_ceiling
from rag.text import normalize, tokens

FEATURES = (
    "evidence",        # the sentence scorer's best score
    "best_cos",        # cosine of the best sentence with the question
    "max_cos",         # best cosine among all candidates
    "cos_gap",         # best cosine minus the best cosine in another document
    "score_gap",       # best score minus the runner-up's score
    "top_dense",       # cosine of the passage ranked first by dense retrieval
    "dense_peak",      # top dense cosine minus the mean of the next ones
    "sent_overlap",    # IDF-weighted share of the question's words in the best sentence
    "passage_overlap",  # … in the best sentence's passage
    "rare_coverage",   # share of the question's three rarest words in that passage
    "numbers",         # 1 if the question has numbers
    "number_coverage",  # share of the question's numbers found in that passage
    "lexical_ratio",   # BM25 of the best lexical passage / the most the question's words could score
    "agree",           # 1 if dense and lexical rank the same passage first
    "cross",           # 1 if the best sentence's document is in another language than the question
    "cross_cos",       # cross × best_cos (the cosine scale differs across languages)
)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class Decision:
    """The answerability of one question: log-odds that the corpus answers it, the
    threshold it was compared with, and the language pair that chose the threshold."""

    score: float
    threshold: float
    pair: str

    @property
    def answerable(self) -> bool:
        return self.score >= self.threshold


def language_pair(question_lang: str, doc_lang: str) -> str:
    return f"{question_lang}>{doc_lang}"


def _idf(df: dict[str, int], t: str) -> float:
    n = df.get("_n", 1)
    return math.log(1 + n / (1 + df.get(t, 0)))


def rarest(weights: dict[str, float], n: int = 3) -> list[str]:
    """The n words of highest weight; ties broken by the word itself, so that the choice does
    not depend on the order of a set (which changes from one Python process to the next)."""
    return sorted(weights, key=lambda t: (-weights[t], t))[:n]


def question_features(index, hits, scored, q_vec: np.ndarray, question: str, question_lang: str) -> np.ndarray:
    """FEATURES for one question, from its hits and its scored candidates (best first)."""
    if not scored:
        return np.zeros(len(FEATURES), np.float32)
    best_score, j, h = scored[0]
    sv = index.sentence_vectors
    cos = {jj: float(sv[jj] @ q_vec) for _, jj, _ in scored}
    best_cos = cos[j]
    best_doc = h.passage.doc_id
    other = [cos[jj] for _, jj, hh in scored if hh.passage.doc_id != best_doc]
    runner = scored[1][0] if len(scored) > 1 else best_score - 1.0

    q_tokens = sorted(set(tokens(question)))  # sorted: the same sums, in the same order, in every process
    s_tokens = set(tokens(index.sentence_text(j)))
    p_tokens = set(tokens(h.passage.text))
    weights = {t: _idf(index.df, t) for t in q_tokens}
    total = sum(weights.values()) or 1.0
    sent_overlap = sum(w for t, w in weights.items() if t in s_tokens) / total
    passage_overlap = sum(w for t, w in weights.items() if t in p_tokens) / total
    rare = rarest(weights)
    rare_coverage = sum(t in p_tokens for t in rare) / len(rare) if rare else 0.0

    q_numbers = set(_NUMBER.findall(normalize(question)))
    p_numbers = set(_NUMBER.findall(normalize(h.passage.text)))
    number_coverage = len(q_numbers & p_numbers) / len(q_numbers) if q_numbers else 0.0

    dense = sorted((x.dense for x in hits if x.dense is not None), reverse=True)
    top_dense = dense[0] if dense else 0.0
    dense_peak = top_dense - float(np.mean(dense[1:6])) if len(dense) > 1 else 0.0
    lexical = [x for x in hits if x.lexical is not None]
    ceiling = lexical_ceiling(index, list(q_tokens))  # what a passage holding every question word would score
    lexical_ratio = max(x.lexical for x in lexical) / ceiling if lexical and ceiling else 0.0
    top_dense_hit = max((x for x in hits if x.dense is not None), key=lambda x: x.dense, default=None)
    top_lexical_hit = max(lexical, key=lambda x: x.lexical, default=None)
    agree = float(top_dense_hit is not None and top_lexical_hit is not None
                  and top_dense_hit.passage.doc_id == top_lexical_hit.passage.doc_id)
    cross = float(index.documents[best_doc].lang != question_lang)
    return np.array([
        best_score, best_cos, max(cos.values()), best_cos - (max(other) if other else 0.0), best_score - runner,
        top_dense, dense_peak, sent_overlap, passage_overlap, rare_coverage, float(bool(q_numbers)),
        number_coverage, min(lexical_ratio, 2.0), agree, cross, cross * best_cos,
    ], np.float32)


@dataclass(frozen=True)
class Model:
    """Standardised logistic regression over FEATURES, with thresholds per language pair."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float
    thresholds: dict[str, float]  # language pair → threshold on the log-odds; "*" for the rest

    def score(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        return ((x - self.mean) / self.scale) @ self.coef + self.bias

    def decide(self, x: np.ndarray, pair: str) -> Decision:
        threshold = self.thresholds.get(pair, self.thresholds["*"])
        return Decision(float(self.score(x)[0]), float(threshold), pair if pair in self.thresholds else "*")

    def to_dict(self) -> dict:
        return standardised_to_dict(FEATURES, self.mean, self.scale, self.coef, self.bias) | {
            "thresholds": {k: round(v, 4) for k, v in self.thresholds.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        return cls(*standardised_from_dict(d, FEATURES, "refit the answerability model "
                                           "(python eval/fit_answerability.py --write-calibration)"),
                   dict(d["thresholds"]))


def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> Model:
    """The logistic model on standardised features (rag.fitting); thresholds are left to the
    caller (all "*": 0, i.e. even odds)."""
    return Model(*fit_standardised(X, y, C), {"*": 0.0})
