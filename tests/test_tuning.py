"""rag.tuning: one frozen set of fitted values per model, bound to the weights it was fitted
for, under an index's explicit threshold override and nothing else."""

import json

import pytest

from rag import tuning
from rag.evaluation.runner import store_calibration
from rag.index import Index
from rag.metrics import AbstentionScores, Calibration


@pytest.fixture
def shipped_file(tmp_path, monkeypatch):
    """A calibration.json of our own for the tests' hash model, read instead of the shipped one."""
    f = tmp_path / "calibration.json"
    f.write_text(json.dumps({"hash-256": {"threshold": 0.5, "sentence_margin": 1.0, "lean": {"weight": 0.2}}}), "utf-8")
    monkeypatch.setattr(tuning, "SHIPPED", f)
    tuning.shipped.cache_clear()
    yield f
    tuning.shipped.cache_clear()


def test_an_index_override_never_hides_a_later_refit(tiny_engine, shipped_file):
    """`rag eval --calibrate` stores a threshold with the index; a value refitted afterwards in
    the shipped file must still apply to that index (it used to keep a frozen copy of them all)."""
    s = tiny_engine.settings
    idx = Index.load(s.index_dir, s)
    assert idx.tuning.threshold == 0.5 and idx.tuning["sentence_margin"] == 1.0
    cal = Calibration(0.1, AbstentionScores(tp=1, fp=0, fn=0, tn=1))
    store_calibration(idx, cal, "a user's gold set", "hybrid")
    stored = json.loads((s.index_dir / "calibration.json").read_text("utf-8"))["hash-256"]
    assert "sentence_margin" not in stored and "lean" not in stored  # the override, not a copy of everything
    tuning.write("hash-256", "sentence_margin", 2.0, idx.manifest["model"]["sha256"], shipped_file)  # a refit
    again = Index.load(s.index_dir, s)
    assert again.tuning.threshold == pytest.approx(0.1)  # the index's own threshold
    assert again.tuning["sentence_margin"] == 2.0  # the refit applies
    assert again.tuning["lean"] == {"weight": 0.2}


def test_values_fitted_for_other_weights_are_not_applied(tiny_engine, shipped_file, caplog):
    data = json.loads(shipped_file.read_text("utf-8"))
    data["hash-256"]["weights_sha256"] = "0" * 64
    shipped_file.write_text(json.dumps(data), "utf-8")
    tuning.shipped.cache_clear()
    s = tiny_engine.settings
    with caplog.at_level("WARNING"):
        idx = Index.load(s.index_dir, s)
        assert idx.tuning.values == {} and idx.tuning.threshold is None
    assert "fitted for other weights" in caplog.text
    data["hash-256"]["weights_sha256"] = idx.manifest["model"]["sha256"]
    shipped_file.write_text(json.dumps(data), "utf-8")
    tuning.shipped.cache_clear()
    assert Index.load(s.index_dir, s).tuning.threshold == 0.5


def test_the_judges_values_need_the_judge_weights_they_were_fitted_with(shipped_file, caplog):
    data = json.loads(shipped_file.read_text("utf-8"))
    data["hash-256"]["judge"] = {"threshold": 0.7, "weights_sha256": "f" * 64}
    shipped_file.write_text(json.dumps(data), "utf-8")
    with caplog.at_level("WARNING"):
        assert "judge" not in tuning.shipped("hash-256")
    assert "other judge weights" in caplog.text
    data["hash-256"]["judge"]["weights_sha256"] = tuning.file_sha256(tuning.VERIFIER_WEIGHTS)
    shipped_file.write_text(json.dumps(data), "utf-8")
    tuning.shipped.cache_clear()
    assert tuning.shipped("hash-256")["judge"]["threshold"] == 0.7


def test_the_shipped_values_name_the_weights_they_were_fitted_for():
    from rag.models import EMBEDDINGGEMMA

    t = tuning.shipped(EMBEDDINGGEMMA.name, EMBEDDINGGEMMA.sha256)
    assert t["weights_sha256"] == EMBEDDINGGEMMA.sha256
    assert "judge" in t and t["judge"]["weights_sha256"] == tuning.file_sha256(tuning.VERIFIER_WEIGHTS)
    # what the judge replaced is gone: one decision
    assert not {"answerability", "reader", "verifier", "sentence_margin"} & set(t.values)


def test_write_merges_one_value_and_keeps_the_others(tmp_path):
    f = tmp_path / "calibration.json"
    f.write_text(json.dumps({"m": {"threshold": 1.0, "judge": {"threshold": 0.7, "top_k": 6}},
                             "other": {"threshold": 2.0}}), "utf-8")
    tuning.write("m", "judge", {"threshold": 0.9, "source": "fit_judge"}, "a" * 64, f)
    data = json.loads(f.read_text("utf-8"))
    assert data["other"] == {"threshold": 2.0}
    assert data["m"]["threshold"] == 1.0 and data["m"]["weights_sha256"] == "a" * 64
    assert data["m"]["judge"]["top_k"] == 6  # kept
    assert data["m"]["judge"]["threshold"] == 0.9


def test_a_tuning_is_frozen_and_replace_makes_another():
    t = tuning.Tuning("m", {"lean": {"weight": 0.2}, "sentence_margin": 1.0})
    u = t.replace(lean=None, sentence_margin=2.0)
    assert "lean" in t and t["sentence_margin"] == 1.0
    assert "lean" not in u and u["sentence_margin"] == 2.0
    with pytest.raises(AttributeError):
        t.model = "other"
    assert t.with_override({"threshold": 3.0, "sentence_margin": 9.0}).override == {"threshold": 3.0}
