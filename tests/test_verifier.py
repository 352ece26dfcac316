"""The judge (rag/verifier.py, a cross-encoder) reads the scorer's best candidates: the answer leads
with the one it reads as stating what is asked, and abstains when none reaches its one threshold."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from rag import verifier as vf
from rag.answer import judge_spec, select
from rag.config import Settings
from rag.models import ensure_model, weights_hash


def test_no_judge_for_a_model_it_was_not_trained_on(tiny_engine):
    s = tiny_engine.settings  # the hash embedder of the tests
    assert vf.load_verifier(s) is None and judge_spec(tiny_engine.index, s) is None
    ans = tiny_engine.ask("Geneva airport closed hours", settings=s)
    assert not ans.abstained and ans.threshold == tiny_engine.index.abstain_threshold(s)  # the scorer's own
    t = ans.timings_ms
    assert t["judge"] < 1.0  # the judge did not read
    assert t["retrieve"] > 0 and t["total"] > 0  # stages that ran took time …
    stages = t["embed"] + t["retrieve"] + t["select"] + t["judge"]
    assert stages == pytest.approx(t["total"], abs=0.3)  # … and add up to the total (each rounded to 0.1 ms)


def test_no_mode_switch_is_left():
    for gone in ("verifier", "reader", "answerability", "sentence_margin", "verified_margin"):
        assert gone not in {f.name for f in dataclasses.fields(Settings)}


def test_runners_up_must_pass_the_judge(tiny_engine):
    index = tiny_engine.index
    h = next(h for h in tiny_engine.ask("Geneva airport closed hours").hits if len(index.passage_sentences(h.index)) >= 2)
    js = list(index.passage_sentences(h.index))
    scored = [(5.0, js[0], h), (-50.0, js[1], h)]
    s = dataclasses.replace(tiny_engine.settings, max_sentences=2)
    # far below the best: left out by the scorer's margin, kept when the judge passed it …
    assert [j for _, j, _ in select(scored, index, s)] == [js[0]]
    assert [j for _, j, _ in select(scored, index, s, {js[0], js[1]})] == js[:2]
    # … and never kept when it did not
    assert [j for _, j, _ in select(scored, index, s, {js[0]})] == [js[0]]


@pytest.mark.model
def test_weights_of_other_base_weights_are_a_clear_error(tmp_path):
    folder = ensure_model(Settings().model, Settings().models_dir)
    w = dict(np.load(vf.WEIGHTS))
    w["base_sha256"] = np.array("0" * 64)
    bad = tmp_path / "verifier.npz"
    np.savez(bad, **w)
    with pytest.raises(vf.VerifierError, match="trained on other base weights"):
        vf.Verifier(folder, weights_hash(folder), weights=bad)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(vf.VerifierError, match="cannot be read"):
        vf.Verifier(folder, weights_hash(folder), weights=tmp_path / "broken.npz")


@pytest.mark.model
def test_broken_judge_weights_are_one_clear_line(seed_index_dir, tmp_path, monkeypatch, capsys):
    from rag import cli

    broken = tmp_path / "verifier.npz"
    broken.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setattr(vf, "WEIGHTS", broken)
    monkeypatch.chdir(seed_index_dir)
    assert cli.main(["ask", "مدت تماس پوتین و ترامپ چقدر بود؟"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the verifier's weights cannot be read") and "Traceback" not in err
    monkeypatch.setattr(vf, "WEIGHTS", tmp_path / "gone.npz")  # missing: the same, never answered quietly without it
    assert cli.main(["ask", "مدت تماس پوتین و ترامپ چقدر بود؟"]) == 2
    assert capsys.readouterr().err.startswith("error: the verifier's weights are missing")


@pytest.mark.model
def test_the_verifier_reads_question_and_sentence_together():
    v = vf.load_verifier(Settings())
    question = "مدت تماس تلفنی پوتین و ترامپ چقدر بود؟"
    logits = v.score(question, [
        "تماس تلفنی ولادیمیر پوتین و دونالد ترامپ حدود ۵۰ دقیقه طول کشید.",  # states it
        "ولادیمیر پوتین و دونالد ترامپ درباره اوکراین تلفنی گفتگو کردند.",  # same call, no length
        "قیمت طلا امروز افزایش یافت.",
    ])
    assert logits[0] > logits[1] > logits[2]
    assert logits[0] > 0 > logits[2]


NEAR_MISSES = [  # the subject is in the seed corpus, what is asked is not
    "كم يبلغ عدد سكان جنيف؟",  # Geneva's population (ar>fa)
    "کاترین اشتون اهل کدام کشور است؟",  # Ashton's nationality (fa>fa)
    "ما هي عاصمة عمان؟",  # the capital of Oman: its foreign minister is in the Arabic article (answered before)
]
NEAR_MISSES_ANSWERED = [  # still answered with a citation (kept visible: the decision leans on how close the corpus comes)
    "How many times have Putin and Trump met in person?",  # (en>fa)
]


@pytest.mark.model
@pytest.mark.parametrize("question", NEAR_MISSES)
def test_a_near_miss_abstains(seed_engine, question):
    ans = seed_engine.ask(question)
    assert ans.abstained and ans.evidence < ans.threshold and not ans.citations, ans.text


@pytest.mark.model
@pytest.mark.xfail(reason="a near-miss the decision still answers (NEAR_MISSES_ANSWERED)", raises=AssertionError, strict=True)
@pytest.mark.parametrize("question", NEAR_MISSES_ANSWERED)
def test_near_misses_still_answered(seed_engine, question):
    test_a_near_miss_abstains(seed_engine, question)


@pytest.mark.model
def test_one_threshold_for_every_language_pair(seed_engine):
    spec = seed_engine.index.tuning["judge"]
    assert set(spec) >= {"threshold", "top_k", "weights_sha256", "coef"} and "pairs" not in spec
    answers = [seed_engine.ask(q) for q in ("مدت تماس تلفنی پوتین و ترامپ چقدر بود؟",
                                            "How long did the phone call between Putin and Trump last?",
                                            "كم استغرقت المكالمة الهاتفية بين بوتين وترامب؟")]
    assert [a.pair for a in answers] == ["fa>fa", "en>fa", "ar>fa"]
    assert {a.threshold for a in answers} == {spec["threshold"]}
    for a in answers:
        assert not a.abstained and a.evidence >= a.threshold and "۵۰ دقیقه" in a.citations[0].text
        assert a.timings_ms["judge"] > 0


@pytest.mark.model
def test_the_openvino_export_agrees_with_torch_and_is_what_answers_use():
    pytest.importorskip("openvino")
    s = Settings()
    v = vf.load_verifier(s)
    assert isinstance(v, vf.OpenVINOVerifier)  # exported (or found) by load_verifier, checked
    # in float32 on every CPU by default (RAG_DTYPE=bfloat16 asks for bfloat16): the same answers everywhere
    assert v.backend == "openvino-int8-f32"
    folder = ensure_model(s.model, s.models_dir)
    check = json.loads((vf.export_dir(folder) / "check.json").read_text("utf-8"))
    assert check["source_sha256"] == weights_hash(folder) and check["pairs"] == len(vf.check_pairs())
    assert all(p["passed"] and p["max_drift"] <= vf.MAX_DRIFT for p in check["precisions"].values())
    # and on pairs it was not checked on, against torch float32
    question = "مدت تماس تلفنی پوتین و ترامپ چقدر بود؟"
    sentences = ["تماس تلفنی ولادیمیر پوتین و دونالد ترامپ حدود ۵۰ دقیقه طول کشید.",
                 "ولادیمیر پوتین و دونالد ترامپ درباره اوکراین تلفنی گفتگو کردند.", "قیمت طلا امروز افزایش یافت."]
    torch_logits = vf.Verifier(folder, weights_hash(folder), "float32").score(question, sentences)
    assert np.abs(v.score(question, sentences) - torch_logits).max() <= vf.MAX_DRIFT


@pytest.mark.model
def test_a_failed_export_falls_back_to_torch_and_is_not_tried_at_every_start(tmp_path, monkeypatch, caplog):
    pytest.importorskip("openvino")
    folder = ensure_model(Settings().model, Settings().models_dir)
    other = tmp_path / "verifier.npz"  # the same adapters under another name: an export of its own
    np.savez(other, **dict(np.load(vf.WEIGHTS)), note=np.array("test"))
    failed = vf.export_dir(folder, other).with_name(vf.export_dir(folder, other).name + ".failed")
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise vf.VerifierError("exporting the verifier to OpenVINO failed (test)")

    monkeypatch.setattr(vf, "export_openvino", broken)
    try:
        assert vf._exported(folder, weights_hash(folder), other) is None
        assert failed.exists() and "torch serves instead" in caplog.text
        assert vf._exported(folder, weights_hash(folder), other) is None and len(calls) == 1  # not again …
        assert vf._exported(folder, weights_hash(folder), other, retry=True) is None and len(calls) == 2  # … but here
    finally:
        failed.unlink(missing_ok=True)


def test_rag_ask_warms_it_up_only_when_nothing_must_be_made_first(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(vf, "load_verifier", lambda settings: calls.append(settings))
    nothing_here = Settings(models_dir=tmp_path / "models")  # the model itself would be downloaded
    vf.warm_up(nothing_here, make=False)
    assert calls == []
    vf.warm_up(nothing_here)  # the app's warm-up makes what is missing
    assert len(calls) == 1


@pytest.mark.model
def test_a_missing_export_is_not_begun_by_a_warm_up_that_may_be_cut_short(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    other = tmp_path / "verifier.npz"  # adapters of their own: no export of them yet
    np.savez(other, **dict(np.load(vf.WEIGHTS)), note=np.array("test"))
    assert vf._ready(Settings())  # the shipped adapters' export exists (made by rag model fetch) …
    monkeypatch.setattr(vf, "WEIGHTS", other)
    assert not vf._ready(Settings())  # … theirs does not


@pytest.mark.model
def test_a_damaged_export_is_a_clear_error_that_says_what_to_do(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    folder = ensure_model(Settings().model, Settings().models_dir)
    other = tmp_path / "verifier.npz"
    np.savez(other, **dict(np.load(vf.WEIGHTS)), note=np.array("damaged"))
    target = vf.export_dir(folder, other)
    target.mkdir()
    try:
        (target / "check.json").write_text(json.dumps({"format": vf.EXPORT_FORMAT, "source_sha256": weights_hash(folder)}))
        (target / "model.xml").write_text("<net>cut short")
        with pytest.raises(vf.VerifierError, match="cannot be loaded .*delete that folder and run `rag model fetch`"):
            vf._load(Settings().model, str(Settings().models_dir), "float32", str(other))
    finally:
        shutil.rmtree(target)
