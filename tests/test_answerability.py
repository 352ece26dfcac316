"""The answerability model: features, fitting, thresholds per language pair, and its use by the answerer."""

import dataclasses

import numpy as np
import pytest

from rag import answerability as ab
from rag.answer import retrieve_for_answer
from rag.scorer import score_sentences


def _features(engine, question):
    index = engine.index
    q_vec = engine.embedder.embed_queries([question])[0]
    hits = retrieve_for_answer(index, question, q_vec, engine.settings)
    scored, _ = score_sentences(index, hits, q_vec, question, engine.settings)
    return ab.question_features(index, hits, scored, q_vec, question, "fa"), scored


def test_features_see_coverage_of_the_question(tiny_engine):
    on_topic, scored = _features(tiny_engine, "تماس تلفنی پوتین و ترامپ چقدر طول کشید")
    off_topic, _ = _features(tiny_engine, "قیمت طلا در بازار استانبول")
    f = dict(zip(ab.FEATURES, on_topic, strict=True))
    g = dict(zip(ab.FEATURES, off_topic, strict=True))
    assert len(on_topic) == len(ab.FEATURES) and np.isfinite(on_topic).all()
    assert f["evidence"] == pytest.approx(scored[0][0])
    assert f["passage_overlap"] > 0.5 > g["passage_overlap"]
    assert f["rare_coverage"] > g["rare_coverage"]
    assert f["cross"] == 0.0 and f["cross_cos"] == 0.0
    numbers, _ = _features(tiny_engine, "تماس ۵۰ دقیقه طول کشید؟")
    h = dict(zip(ab.FEATURES, numbers, strict=True))
    assert h["numbers"] == 1.0 and h["number_coverage"] == 1.0  # ۵۰ and 50 are the same number


def test_no_candidates_give_zero_features(tiny_engine):
    assert not ab.question_features(tiny_engine.index, [], [], np.zeros(256, np.float32), "x", "en").any()


def test_fit_separates_and_round_trips():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(ab.FEATURES)))
    y = (X[:, 1] + 0.5 * X[:, 8] + rng.normal(scale=0.3, size=600) > 0).astype(float)
    model = ab.fit(X, y)
    accuracy = ((model.score(X) > 0) == (y == 1)).mean()
    assert accuracy > 0.9
    model = ab.Model(model.mean, model.scale, model.coef, model.bias, {"*": 0.0, "en>ar": -1.0})
    again = ab.Model.from_dict(model.to_dict())
    assert np.allclose(again.score(X), model.score(X), atol=1e-3)
    d = again.decide(X[0], "en>ar")
    assert d.threshold == -1.0 and d.pair == "en>ar"
    d = again.decide(X[0], "fa>ar")  # no threshold of its own: the global one
    assert d.threshold == 0.0 and d.pair == "*" and d.answerable == (d.score >= 0.0)


def test_a_model_fitted_on_other_features_is_a_clear_error():
    d = ab.fit(np.random.default_rng(1).normal(size=(50, len(ab.FEATURES))), np.arange(50) % 2).to_dict()
    d["features"] = d["features"][:-1]
    with pytest.raises(ValueError, match="fitted on other features.*fit_answerability.py"):
        ab.Model.from_dict(d)


def _with_model(engine, thresholds):
    """The tiny index's tuning with an answerability model whose log-odds follow the best cosine."""
    coef = np.zeros(len(ab.FEATURES), np.float32)
    coef[ab.FEATURES.index("best_cos")] = 10.0
    model = ab.Model(np.zeros(len(ab.FEATURES), np.float32), np.ones(len(ab.FEATURES), np.float32), coef, 0.0, thresholds)
    return engine.index.tuning.replace(answerability=model.to_dict())


def test_the_answerer_abstains_by_the_pair_threshold(tiny_engine):
    question = "تماس تلفنی پوتین و ترامپ"
    s = dataclasses.replace(tiny_engine.settings, abstain_threshold=None)  # the tiny fixture sets one
    ans = tiny_engine.ask(question, settings=s, tuning=_with_model(tiny_engine, {"*": 100.0}))
    assert ans.abstained and ans.threshold == 100.0 and ans.pair == "fa>fa" and ans.to_dict()["pair"] == "fa>fa"
    ans = tiny_engine.ask(question, settings=s, tuning=_with_model(tiny_engine, {"*": 100.0, "fa>fa": -100.0}))
    assert not ans.abstained and ans.threshold == -100.0 and ans.citations
    feats, _ = _features(tiny_engine, question)  # the evidence is the model's log-odds: 10 × best cosine
    assert ans.evidence == pytest.approx(10 * feats[ab.FEATURES.index("best_cos")], abs=1e-3)


def test_answerability_off_and_explicit_threshold_override(tiny_engine):
    question = "تماس تلفنی پوتین و ترامپ"
    from rag.answer import abstention_rule

    t = _with_model(tiny_engine, {"*": 100.0})
    s = dataclasses.replace(tiny_engine.settings, abstain_threshold=None)
    assert tiny_engine.ask(question, settings=s, tuning=t).abstained
    off = tiny_engine.ask(question, settings=s.replace(answerability="off"), tuning=t)  # the scorer's threshold: none
    assert not off.abstained and off.evidence == pytest.approx(score_sentences(
        tiny_engine.index, off.hits, tiny_engine.embedder.embed_queries([question])[0], question, s)[0][0][0], abs=1e-6)
    explicit = tiny_engine.ask(question, settings=s.replace(abstain_threshold=-50.0), tuning=t)
    assert not explicit.abstained and explicit.threshold == -50.0
    calibrated = t.with_override({"answerability_threshold": -60.0})  # `rag eval --calibrate` on this index
    assert tiny_engine.ask(question, settings=s, tuning=calibrated).threshold == -60.0
    assert "-60.0000 (calibrated on this index" in abstention_rule(tiny_engine.index.with_tuning(calibrated), s)
    assert abstention_rule(tiny_engine.index.with_tuning(t), s).endswith("threshold of the language pair (* 100.00)")
    assert "set explicitly" in abstention_rule(tiny_engine.index.with_tuning(t), s.replace(abstain_threshold=-50.0))
    assert tiny_engine.index.tuning.get("answerability") is None  # the engine's own index was never changed


def test_the_rarest_words_do_not_depend_on_the_process():
    """Words of equal weight (e.g. none of them in the index) used to be taken in set order,
    which Python changes from one process to the next: the same question could get another
    answerability score after a restart."""
    import os
    import subprocess
    import sys

    code = ("from rag.answerability import rarest; from rag.text import tokens; "
            "ws = sorted(set(tokens('ظریف کری لاوروف اشتون کالاس عراقچی پوتین ترامپ'))); "
            "print(rarest({t: 1.0 for t in set(ws)}))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in range(6)}
    assert len(seen) == 1
    assert ab.rarest({"b": 1.0, "a": 1.0, "c": 2.0, "d": 0.5}) == ["c", "a", "b"]
