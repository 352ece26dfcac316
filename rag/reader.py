"""The reader: re-reads the best candidate sentences token by token against the question.

The sentence scorer (rag.answer) compares one vector per sentence with one vector per
question. The reader compares their tokens: EmbeddingGemma's contextual vector of every
question token against those of the sentence (late interaction, "MaxSim", as ColBERT
does): how well each question token is matched somewhere in the sentence, and each
sentence token in the question. Both are added to the scorer's features, and a linear
model over all of them — fitted like the scorer, pairwise, by eval/fit_reader.py on the
dev sets — re-orders the scorer's top `top_k` candidates. Nothing is trained in the
embedding model: the reader is the model's own token states plus a dozen weights in
rag/calibration.json.

It costs one forward pass over the top candidates per question (the question's token
states come from the query embedding's own pass): about 0.2 s for four sentences where
the CPU computes bfloat16 natively, 0.55 s in float32. So `RAG_READER=auto` (the default)
reads only on such CPUs; `on` always, `off` never (the scorer's order, as before 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.scorer import FEATURES as SENTENCE_FEATURES

FEATURES = ("maxsim_question", "maxsim_sentence")  # question tokens found in the sentence; sentence tokens in the question
ALL_FEATURES = SENTENCE_FEATURES + FEATURES


def maxsim(question: np.ndarray, sentence: np.ndarray) -> tuple[float, float]:
    """(mean over question tokens of their best cosine in the sentence, and the reverse)."""
    if not len(question) or not len(sentence):
        return 0.0, 0.0
    sim = question @ sentence.T
    return float(sim.max(1).mean()), float(sim.max(0).mean())


@dataclass(frozen=True)
class Reader:
    weights: dict[str, float]  # over ALL_FEATURES, plus "bias"
    top_k: int

    @classmethod
    def from_dict(cls, d: dict) -> Reader:
        missing = [f for f in ALL_FEATURES if f not in d.get("weights", {})]
        if missing or int(d.get("top_k", 0)) < 1:
            raise ValueError("the reader in rag/calibration.json does not fit this version "
                             f"(missing weights: {', '.join(missing) or 'none'}; top_k {d.get('top_k')}): "
                             "refit it (python eval/fit_reader.py --write-calibration) or set RAG_READER=off")
        return cls({k: float(v) for k, v in d["weights"].items()}, int(d["top_k"]))

    def to_dict(self) -> dict:
        return {"weights": {k: round(v, 6) for k, v in self.weights.items()}, "top_k": self.top_k}

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores of rows of ALL_FEATURES."""
        w = np.array([self.weights[f] for f in ALL_FEATURES], np.float32)
        return features @ w + self.weights.get("bias", 0.0)


def read(reader: Reader, embedder, index, scored: list, rows: dict[int, np.ndarray],
         question_tokens: np.ndarray) -> list:
    """The scorer's candidates (score, sentence, hit), best first, with the top `top_k`
    re-ordered and re-scored by the reader; the others are left out (the answer's sentences
    come from the reader's candidates). `rows`: each candidate's scorer features by sentence."""
    top = scored[: reader.top_k]
    if len(top) < 2:
        return top
    tokens = embedder.document_tokens([index.sentence_text(j) for _, j, _ in top])
    feats = np.stack([np.concatenate([rows[j], maxsim(question_tokens, t)]) for (_, j, _), t in zip(top, tokens, strict=True)])
    scores = reader.score(feats.astype(np.float32))
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), top[i][1], top[i][2]) for i in order]
