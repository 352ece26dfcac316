"""The sentence scorer: every sentence of the best passages as a row of FEATURES, scored by
a linear model fitted on the dev sets (rag/calibration.json, "sentence_weights"; fitted by
eval/fit_scorer.py), best first. rag.answer has the judge read the best of them."""

from __future__ import annotations

import math
import re

import numpy as np

from rag.config import Settings
from rag.index import Index
from rag.retrieval import Hit
from rag.text import normalize, tokens


def idf_overlap(q_tokens: list[str], s_tokens: set[str], df: dict[str, int]) -> float:
    """Share of the question's IDF mass found in the sentence (0..1)."""
    n = df.get("_n", 1)
    total = found = 0.0
    for t in set(q_tokens):
        w = math.log(1 + n / (1 + df.get(t, 0)))
        total += w
        if t in s_tokens:
            found += w
    return found / total if total else 0.0


# questions whose answer is a number, a date or a duration (normalised forms)
_NUMERIC_Q = re.compile(
    r"\b(how (many|much|long|old|far)|when|what (year|date|time)|which year)\b"
    r"|(^|\s)(چند|چقدر|چه مدت|چه سالی|چه تاریخی|چه زمانی|کی|کدام سال|کم|متی|ای عام|ای سنه|ای یوم|ای تاریخ)(\s|$|؟)"
)
_DIGIT = re.compile(r"\d")

FEATURES = ("cos", "overlap", "neighbour_cos", "numeric_match", "novelty", "log_length", "passage_cos", "passage_rank",
            "local_overlap")
DEFAULT_WEIGHTS = {"bias": 0.0, "cos": 1.0, "overlap": 0.3}
DENSE_SCAN = 10  # answer_pool looks this far down the ranking for the passage closest by cosine
# a sentence with fewer content words (rag.text.tokens: stopwords left out) is never an answer
# candidate: in the dev sets' indexed pool (15,299 sentences, 317 of them this short) such a
# sentence alone holds the answer of 1 of 2,907 answerable questions (a broken split, "300 ميلادية.)")
MIN_ANSWER_WORDS = 3


def sentence_features(index: Index, hits: list[Hit], q_vec: np.ndarray, question: str,
                      n_passages: int) -> tuple[np.ndarray, list[tuple[int, Hit]]]:
    """One row of FEATURES per sentence of the top passages, and (sentence index, hit) per row."""
    q_tokens = tokens(question)
    q_set = set(q_tokens)
    numeric_q = bool(_NUMERIC_Q.search(" ".join(normalize(question).split())))
    cands = []  # (rank, hit, sentence index, cosine, neighbours' cosines, text, token set)
    for rank, h in answer_pool(hits, n_passages):
        js = list(index.passage_sentences(h.index))
        if not js:
            continue
        cos = index.sentence_vectors[js] @ q_vec
        for pos, j in enumerate(js):
            text = index.sentence_text(j)
            words = tokens(text)
            if len(words) < MIN_ANSWER_WORDS:
                continue  # "نظر شما", "315 315", "[4]": site furniture or a broken split, never an answer
            neighbours = [cos[pos - 1]] if pos > 0 else []
            neighbours += [cos[pos + 1]] if pos + 1 < len(js) else []
            cands.append((rank, h, j, float(cos[pos]), neighbours, text, set(words)))
    local = local_weights(q_set, [c[-1] for c in cands], index.df)
    local_total = sum(local.values())
    rows, refs = [], []
    for rank, h, j, cos, neighbours, text, s_set in cands:
        rows.append((
            cos,
            idf_overlap(q_tokens, s_set, index.df),
            float(max(neighbours)) if neighbours else cos,
            float(numeric_q and bool(_DIGIT.search(normalize(text)))),
            len(s_set - q_set) / len(s_set) if s_set else 0.0,
            math.log(1 + len(text)),
            float(h.dense) if h.dense is not None else 0.0,
            1.0 / rank,
            sum(w for t, w in local.items() if t in s_set) / local_total if local_total else 0.0,
        ))
        refs.append((j, h))
    return np.array(rows, dtype=np.float32).reshape(-1, len(FEATURES)), refs


def answer_pool(hits: list[Hit], n_passages: int) -> list[tuple[int, Hit]]:
    """The passages answer sentences are taken from, each with its rank by query cosine.

    The top n_passages of the ranking, plus the passage closest to the question by
    cosine among the first DENSE_SCAN when the ranking left it out. Lexical evidence only
    exists within one language, so the fused ranking favours passages in the question's
    language; cosine does not, and this keeps an answer in another language within reach.
    """
    pool = list(hits[:n_passages])
    scan = [h for h in hits[:DENSE_SCAN] if h.dense is not None]
    if scan:
        best = max(scan, key=lambda h: h.dense)
        if all(best.index != h.index for h in pool):
            pool.append(best)
    by_cos = sorted(pool, key=lambda h: -(h.dense if h.dense is not None else -1.0))
    return [(by_cos.index(h) + 1, h) for h in pool]


def local_weights(q_set: set[str], sentence_sets: list[set[str]], df: dict[str, int]) -> dict[str, float]:
    """Weight of each question word for telling the candidate sentences apart: its corpus
    IDF times how rare it is among the candidates. A word every candidate shares (the
    topic, e.g. the person the question is about) cannot pick the answer sentence."""
    n = len(sentence_sets)
    n_docs = df.get("_n", 1)
    out = {}
    for t in q_set:
        c = sum(t in s for s in sentence_sets)
        out[t] = math.log(1 + n_docs / (1 + df.get(t, 0))) * math.log((1 + n) / (1 + c))
    return out


def score_sentences(index: Index, hits: list[Hit], q_vec: np.ndarray, question: str, settings: Settings,
                    weights: dict | None = None) -> tuple[list[tuple[float, int, Hit]], dict[int, np.ndarray]]:
    """(score, sentence index, hit) for the sentences of the top passages, best first, and
    each one's row of FEATURES by sentence index.

    The score is linear in FEATURES; the weights are fitted on the dev sets for the
    model (rag/calibration.json) and fall back to cosine + lexical overlap.
    """
    feats, refs = sentence_features(index, hits, q_vec, question, settings.answer_passages)
    rows = {j: f for (j, _), f in zip(refs, feats, strict=True)}
    return rank(feats, refs, weights or index.tuning.get("sentence_weights") or DEFAULT_WEIGHTS), rows


def rank(feats: np.ndarray, refs: list[tuple[int, Hit]], weights: dict) -> list[tuple[float, int, Hit]]:
    """(score, sentence index, hit) of candidates with these FEATURES rows, best first."""
    if not refs:
        return []
    w = np.array([weights.get(f, 0.0) for f in FEATURES], dtype=np.float32)
    scores = feats @ w + weights.get("bias", 0.0)
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), refs[i][0], refs[i][1]) for i in order]
