"""Conversation turns: is a question a follow-up? Decided by the evidence of two readings.

Every turn after the first is answered twice:

- **alone**: the question on its own, exactly as a first question;
- **in context**: passages retrieved with the previous turn's search text joined to the
  question, from the documents the previous answer cited when any of them is retrieved
  (else leaning on them by `Settings.prefer_boost`);
  their sentences are then read with the question's own words and vector, so that the
  answer is what the new question asks, not the previous answer again, and lean on the
  previous turn (a candidate closer to its search text gains: "in which country?" after a
  question on Kerry's request is answered by the sentence stating the request); whether the
  sources answer it at all is judged on the joined text (the question as understood).

`reply()` keeps one reading (`judge`) and returns the
other one too, so a user can take the turn the other way without waiting
(`Reply.swapped`). Keywords ("and", "it", "او") play no part: "What is NATO?" is a
follow-up only if reading it with the previous turn finds better evidence.

Which reading to keep is decided by a small logistic model over five signals (FEATURES),
fitted on the dialogue gold set by eval/fit_followups.py and shipped in
rag/calibration.json: how clearly the question is answered alone, and in context; how
well the question itself fits the answer found in context, against the best it finds
alone ("What is the capital of Australia?" asked after a question about Kallas finds the
Kallas sentence through the previous question, not through its own words); how close the
question is to questions that say nothing on their own ("and then?", "و بعد؟", "متى؟"),
measured by the embedding model, in any language; and whether the judge, reading the
question's own words beside the in-context reading's best sentences, finds one that
states what is asked (a self-contained question that only borrows the previous turn's
evidence is read alone, where it may abstain). Without the model a simpler rule decides.

Two cases are settled before the model: after a turn that abstained, a question the
sources answer on its own is read alone (there is no evidence to lean on); small talk
("thanks", rag.small_talk) gets its fixed reply and leaves the conversation
where it was (`Reply.carried`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from rag.answer import (
    Answer,
    Decision,
    answer,
    check_question,
    embed_questions,
    judge_logits,
    judge_spec,
    judge_threshold,
)
from rag.config import Settings
from rag.embedding import Embedder
from rag.fitting import fit_standardised, standardised_from_dict, standardised_to_dict
from rag.index import Index
from rag.small_talk import asks_nothing
from rag.tuning import Tuning
from rag.verifier import load_verifier

READINGS = ("alone", "in-context")
AFTER_ABSTENTION = "alone: the previous turn was not answered, and this question is answered on its own"
MAX_CONTEXT_CHARS = 600  # the in-context search text keeps at most this much of the previous one


@dataclass(frozen=True)
class Context:
    """What the next turn may lean on: the previous turn as it was understood."""

    question: str  # the previous question as typed
    query: str  # what that turn searched (its question, or its own context + its question)
    doc_ids: tuple[str, ...] = ()  # documents its answer cited (empty if it abstained)
    answer: str = ""  # its answer's sentences joined ("" if it abstained)
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)  # `query` embedded (None: not kept)


@dataclass(frozen=True)
class Judgement:
    """What `choose` compared (kept with the reply, for the evaluation report)."""

    alone_margin: float  # evidence − threshold of the reading alone
    context_margin: float  # … of the reading in context
    own_fit_gap: float  # cosine of the question alone with the in-context answer − with its own best sentence
    content_free: float  # cosine of the question with questions that say nothing on their own
    context_verified: float | None  # the judge on the question's own words and the in-context candidates
    reason: str  # why the reading kept was kept, in words


@dataclass(frozen=True)
class Reply:
    question: str
    answer: Answer  # the kept reading's answer
    reading: str  # "alone" or "in-context"
    query: str  # what the kept reading searched
    other: Answer | None = None  # the other reading's answer (None on a first turn)
    other_query: str | None = None
    previous: str | None = None  # the previous question (None on a first turn)
    judgement: Judgement | None = None
    # `query` and `other_query` embedded, so that the next turn need not embed them again
    query_vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    other_vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    # small talk ("thanks") leaves the conversation where it was: the next turn leans on this
    carried: Context | None = None

    def context(self) -> Context | None:
        """What the next turn may lean on."""
        if self.answer.small_talk:
            return self.carried
        return Context(self.question, self.query, self.answer.doc_ids,
                       "" if self.answer.abstained else " ".join(self.answer.sentences), self.query_vector)

    def swapped(self) -> Reply:
        """The same turn read the other way (nothing is recomputed)."""
        if self.other is None:
            return self
        other = READINGS[1] if self.reading == READINGS[0] else READINGS[0]
        return replace(self, answer=self.other, reading=other, query=self.other_query or self.question,
                       other=self.answer, other_query=self.query,
                       query_vector=self.other_vector, other_vector=self.query_vector)


def context_query(question: str, previous: Context) -> str:
    """The in-context search text: the end of the previous turn's search text, then the question."""
    before = previous.query
    if len(before) > MAX_CONTEXT_CHARS:
        before = before[-MAX_CONTEXT_CHARS:].split(" ", 1)[-1]
    return f"{before} {question}"


def reply(index: Index, embedder: Embedder, question: str, previous: Context | None, settings: Settings,
          mode: str | None = None, k: int | None = None, model: FollowUpModel | None | str = "shipped",
          tuning: Tuning | None = None) -> Reply:
    """Answer one turn of a conversation; `previous` is the last turn's `Reply.context()`.

    `model`: the follow-up model; "shipped" = the index's (rag/calibration.json), None =
    the rule without a model; `tuning`: fitted values to answer with instead of the index's."""
    question = check_question(question)
    if tuning is not None:
        index = index.with_tuning(tuning)
    if previous is None:
        own = embed_questions(index, embedder, [question], settings)[0]
        return Reply(question, answer(index, embedder, question, settings, mode, k, embedded=own), READINGS[0],
                     question, query_vector=own[0])
    query = context_query(question, previous)
    # the previous turn's search text was embedded by that turn: its vector comes with it (the
    # dimension checked, in case the index was rebuilt with another model in between)
    carried = previous.vector is not None and np.shape(previous.vector) == index.sentence_vectors.shape[1:]
    texts = [question, query] if carried else [question, query, previous.query]
    own, joined, *rest = embed_questions(index, embedder, texts, settings)
    if asks_nothing(index, embedder, question, own[0]):
        # "thanks", "bye": not a turn of the conversation (no reading to choose, nothing cited);
        # the next question leans on the turn before it
        return Reply(question, answer(index, embedder, question, settings, mode, k, embedded=own), READINGS[0],
                     question, query_vector=own[0], carried=previous)
    before = previous.vector if carried else rest[0][0]
    alone = answer(index, embedder, question, settings, mode, k, embedded=own)
    in_context = answer(index, embedder, question, settings, mode, k, embedded=own, prefer=previous.doc_ids,
                        only_preferred=True, search=(query, joined[0]), judge_as=(query, joined[0]),
                        lean=(before, lean_weight(index)))
    verified = context_verified(index, settings, question, in_context, own[0])
    judgement = judge(index, embedder, own[0], alone, in_context, index.tuning.part("followup", FollowUpModel.from_dict) if model == "shipped" else model,
                      verified)
    if not previous.answer and not alone.abstained:
        # the previous turn abstained: it cited nothing and answered nothing, so there is no
        # evidence to lean on, only its words. A question the sources answer on its own is
        # then a new question ("What is the capital of Australia?", unanswered, then a
        # question on the Putin-Trump call); the reading in context stays one click away
        judgement = replace(judgement, reason=AFTER_ABSTENTION)
    if judgement.reason.startswith("in context"):
        return Reply(question, in_context, READINGS[1], query, alone, question, previous.question, judgement,
                     joined[0], own[0])
    return Reply(question, alone, READINGS[0], question, in_context, query, previous.question, judgement,
                 own[0], joined[0])


def lean_weight(index: Index) -> float:
    """How much the in-context reading leans on the previous turn (rag.answer.lean_on): the
    weight of a candidate's cosine with the previous turn's search text, fitted on the
    dialogue gold set by eval/fit_lean.py and shipped in rag/calibration.json ("lean"); 0
    where none is fitted for the model."""
    return float(index.tuning.get("lean", {}).get("weight", 0.0))


# questions that say nothing on their own: how close a question's vector is to theirs
# measures how much it leans on what came before ("and then?", "و بعد؟", "متى؟")
CONTENT_FREE = (
    "what?", "and then?", "who?", "when?", "where?", "why?", "how?", "and?", "what about it?",
    "و بعد؟", "چه کسی؟", "کی؟", "کجا؟", "چرا؟", "چطور؟", "چه؟",
    "ثم؟", "من؟", "متى؟", "أين؟", "لماذا؟", "كيف؟", "ماذا؟",
)
FEATURES = (
    "alone_margin",  # the reading alone: the judge's best log-odds − threshold
    "context_margin",  # the reading in context: the same
    "own_fit_gap",   # cosine of the question alone with the in-context answer − with its own best sentence
    "content_free",  # cosine of the question with the mean of CONTENT_FREE
    "context_verified",  # the judge's best log-odds, the question's own words against the in-context
                         # reading's best candidates, − its threshold (context_verified)
)
VERIFIED_CLIP = 3.0
@functools.lru_cache(maxsize=4)
def content_free_vector(embedder: Embedder) -> np.ndarray:
    """The normalised mean query vector of CONTENT_FREE (computed once per embedder)."""
    v = np.asarray(embedder.embed_queries(list(CONTENT_FREE)), np.float32).mean(0)
    return v / (np.linalg.norm(v) or 1.0)


@dataclass(frozen=True)
class FollowUpModel:
    """Standardised logistic regression over FEATURES: log-odds that a turn is a follow-up
    (to be read in context). Fitted by eval/fit_followups.py, shipped in rag/calibration.json."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def score(self, x: np.ndarray) -> float:
        return float(((np.asarray(x, np.float32) - self.mean) / self.scale) @ self.coef + self.bias)

    def to_dict(self) -> dict:
        return standardised_to_dict(FEATURES, self.mean, self.scale, self.coef, self.bias)

    @classmethod
    def from_dict(cls, d: dict) -> FollowUpModel:
        return cls(*standardised_from_dict(d, FEATURES, "refit the follow-up model "
                                           "(python eval/fit_followups.py --write-calibration)"))


def fit_followup(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> FollowUpModel:
    return FollowUpModel(*fit_standardised(X, y, C))


def context_verified(index: Index, settings: Settings, question: str, in_context: Answer,
                     q_vec: np.ndarray | None = None) -> float | None:
    """The decision's best log-odds for the question's own words (`q_vec`: its vector) against
    the in-context reading's best candidates, less its threshold, clipped to ±VERIFIED_CLIP
    (-VERIFIED_CLIP when there is no candidate); None where there is no judge (the tests'
    hash model, another embedding model)."""
    if judge_spec(index, settings) is None:
        return None
    if not in_context.candidates or q_vec is None:
        return -VERIFIED_CLIP
    js = list(in_context.candidates)
    logits = judge_logits(load_verifier(settings), index, question, js)
    max_cos = float((index.sentence_vectors[js] @ np.asarray(q_vec, np.float32)).max())
    best = float(index.tuning.part("judge", Decision.from_dict)(logits, max_cos).max())
    return float(np.clip(best - judge_threshold(index, settings), -VERIFIED_CLIP, VERIFIED_CLIP))


def followup_features(index: Index, embedder: Embedder, q_vec: np.ndarray, alone: Answer,
                      in_context: Answer, verified: float | None, model: FollowUpModel | None = None) -> np.ndarray:
    """One row of FEATURES. `verified` (context_verified) None: the model's mean, so that
    it weighs nothing either way (0.0 without a model)."""
    sv = index.sentence_vectors
    own_best = float(sv[alone.best] @ q_vec) if alone.best >= 0 else 0.0
    own_fit = float(sv[in_context.best] @ q_vec) if in_context.best >= 0 else 0.0
    if verified is None:
        verified = float(model.mean[FEATURES.index("context_verified")]) if model is not None else 0.0
    return np.array([alone.margin, in_context.margin, own_fit - own_best, float(content_free_vector(embedder) @ q_vec),
                     verified], np.float32)


# without a fitted model: in context only when its evidence beats the reading alone and
# the question itself is at most this much further (cosine) from that answer than from its own
OWN_FIT_SLACK = 0.10


def judge(index: Index, embedder: Embedder, q_vec: np.ndarray, alone: Answer, in_context: Answer,
          model: FollowUpModel | None = None, verified: float | None = None) -> Judgement:
    """Which reading to keep. With the follow-up model (shipped in rag/calibration.json):
    in context when its log-odds that the turn is a follow-up are positive. Without it: in
    context only when its evidence is better and the question itself fits its answer."""
    x = followup_features(index, embedder, q_vec, alone, in_context, verified, model)
    a, c = alone.margin, in_context.margin
    if model is not None:
        score = model.score(x)
        reason = (f"in context: follow-up log-odds {score:+.2f}" if score > 0 else
                  f"alone: follow-up log-odds {score:+.2f}")
    elif in_context.abstained:
        reason = "alone: read in context, the sources do not answer either"
    elif not alone.abstained and a >= c:
        reason = "alone: it is answered on its own at least as clearly"
    elif x[2] < -OWN_FIT_SLACK:
        reason = "alone: the question itself does not fit the answer found in context"
    else:
        reason = "in context: the previous turn's evidence answers it more clearly"
    return Judgement(a, c, float(x[2]), float(x[3]), verified, reason)
