"""The verifier (a cross-encoder) orders the best candidates and abstains when none states the fact: by
default where it can judge (verifier=auto), in strict mode for every answer (verifier=on)."""

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from rag import verifier as vf
from rag.answer import select, verifier_reads
from rag.config import Settings
from rag.models import ensure_model, weights_hash


def test_the_setting_is_auto_on_or_off_and_auto_by_default():
    assert Settings().verifier == "auto"
    with pytest.raises(ValueError, match="verifier must be auto, on or off"):
        Settings(verifier="strict")


def test_by_default_it_reads_only_questions_on_their_own_words_in_its_pairs():
    index = SimpleNamespace(tuning={"verifier": {"pairs": ["ar>ar", "fa>fa"]}})  # what verifier_reads looks at
    auto = Settings(verifier="auto")
    assert verifier_reads(index, auto, "fa>fa", own_words=True)
    assert not verifier_reads(index, auto, "en>fa", own_words=True)  # a pair it was never trained or measured on
    assert not verifier_reads(index, auto, "fa>fa", own_words=False)  # a follow-up read in context
    assert not verifier_reads(SimpleNamespace(tuning={}), auto, "fa>fa", own_words=True)  # no pairs calibrated
    assert verifier_reads(index, Settings(verifier="on"), "en>fa", own_words=False)
    assert not verifier_reads(index, Settings(verifier="off"), "fa>fa", own_words=True)


def test_no_verifier_for_a_model_it_was_not_trained_on(tiny_engine):
    s = dataclasses.replace(tiny_engine.settings, verifier="on")  # the hash embedder of the tests
    assert vf.load_verifier(s) is None
    ans = tiny_engine.ask("Geneva airport closed hours", settings=s)
    assert ans.verified is None and not ans.abstained
    t = ans.timings_ms
    assert t["read"] == 0.0  # neither the verifier nor the reader read (no reader for the hash model either)
    assert t["retrieve"] > 0 and t["total"] > 0  # stages that ran took time …
    stages = t["embed"] + t["retrieve"] + t["select"] + t["read"] + t["verify"]
    assert stages == pytest.approx(t["total"], abs=0.3)  # … and add up to the total (each rounded to 0.1 ms)


def test_runners_up_must_be_verified(tiny_engine):
    index = tiny_engine.index
    h = next(h for h in tiny_engine.ask("Geneva airport closed hours").hits if len(index.passage_sentences(h.index)) >= 2)
    js = list(index.passage_sentences(h.index))
    scored = [(5.0, js[0], h), (-50.0, js[1], h)]
    s = dataclasses.replace(tiny_engine.settings, max_sentences=2)
    # far below the best: left out by the scorer's margin, kept when the verifier passed it …
    assert [j for _, j, _ in select(scored, index, s)] == [js[0]]
    assert [j for _, j, _ in select(scored, index, s, verified={js[0], js[1]})] == js[:2]
    # … and never kept when it did not
    assert [j for _, j, _ in select(scored, index, s, verified={js[0]})] == [js[0]]


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
def test_strict_mode_with_broken_weights_is_one_clear_line(seed_index_dir, tmp_path, monkeypatch, capsys):
    from rag import cli

    broken = tmp_path / "verifier.npz"
    broken.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setattr(vf, "WEIGHTS", broken)
    monkeypatch.chdir(seed_index_dir)
    assert cli.main(["ask", "--strict", "مدت تماس پوتین و ترامپ چقدر بود؟"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the verifier's weights cannot be read") and "Traceback" not in err
    monkeypatch.setattr(vf, "WEIGHTS", tmp_path / "gone.npz")  # missing: the same, never strict mode quietly off
    assert cli.main(["ask", "--strict", "مدت تماس پوتین و ترامپ چقدر بود؟"]) == 2
    assert capsys.readouterr().err.startswith("error: the verifier's weights are missing")


@pytest.mark.model
def test_the_verifier_reads_question_and_sentence_together():
    v = vf.load_verifier(Settings(verifier="on"))
    question = "مدت تماس تلفنی پوتین و ترامپ چقدر بود؟"
    logits = v.score(question, [
        "تماس تلفنی ولادیمیر پوتین و دونالد ترامپ حدود ۵۰ دقیقه طول کشید.",  # states it
        "ولادیمیر پوتین و دونالد ترامپ درباره اوکراین تلفنی گفتگو کردند.",  # same call, no length
        "قیمت طلا امروز افزایش یافت.",
    ])
    assert logits[0] > logits[1] > logits[2]
    assert logits[0] > 0 > logits[2]


@pytest.mark.model
def test_strict_mode_abstains_where_the_sources_only_share_the_subject(seed_engine):
    strict = seed_engine.settings.replace(verifier="on")
    near_miss = "كم يبلغ عدد سكان جنيف؟"  # Geneva is in the corpus (in Persian), its population is not
    off = seed_engine.settings.replace(verifier="off")
    assert not seed_engine.ask(near_miss, settings=off).abstained  # without it: answered, with a citation
    ans = seed_engine.ask(near_miss, settings=strict)
    assert ans.abstained and ans.verified < 0 and not ans.citations
    clear = seed_engine.ask("مدت تماس تلفنی پوتین و ترامپ چقدر بود؟", settings=strict)
    assert not clear.abstained and clear.verified > 0
    assert "۵۰ دقیقه" in clear.citations[0].text


@pytest.mark.model
def test_by_default_it_abstains_on_a_near_miss_in_a_pair_it_knows(seed_engine):
    near_miss = "کاترین اشتون اهل کدام کشور است؟"  # Ashton is in the Persian article, her nationality is not
    assert not seed_engine.ask(near_miss, settings=seed_engine.settings.replace(verifier="off")).abstained
    ans = seed_engine.ask(near_miss, settings=seed_engine.settings.replace(verifier="auto"))
    assert ans.abstained and ans.verified < 0 and not ans.citations
    clear = seed_engine.ask("مدت تماس تلفنی پوتین و ترامپ چقدر بود؟", settings=seed_engine.settings.replace(verifier="auto"))
    assert not clear.abstained and clear.verified > 0 and "۵۰ دقیقه" in clear.citations[0].text
    # an English question over the Persian article: a pair it does not judge, where it may only veto
    other = seed_engine.ask("How long did the phone call between Putin and Trump last?",
                            settings=seed_engine.settings.replace(verifier="auto"))
    assert other.pair == "en>fa" and not other.abstained and other.verified > 0  # above the veto threshold
    assert "۵۰ دقیقه" in other.citations[0].text


@pytest.mark.model
def test_in_a_pair_it_does_not_judge_it_vetoes_only_a_far_miss(seed_engine):
    auto = seed_engine.settings.replace(verifier="auto")
    spec = seed_engine.index.tuning["verifier"]
    far = seed_engine.ask("كم يبلغ عدد سكان جنيف؟", settings=auto)  # Arabic over the Persian article
    assert far.pair == "ar>fa" and far.abstained and not far.citations
    assert far.verified < 0  # its best log-odds are below the veto threshold, far below the judging one
    assert spec["veto_threshold"] < spec["threshold"]
    # the rule the report prints says so
    from rag.answer import abstention_rule

    assert f"{spec['veto_threshold']:+.2f}" in abstention_rule(seed_engine.index, auto)
    # without a veto threshold in the tuning, the same answer is left to the reader, as before
    without = seed_engine.index.tuning.replace(verifier={k: v for k, v in spec.items() if k != "veto_threshold"})
    assert not seed_engine.ask("كم يبلغ عدد سكان جنيف؟", settings=auto, tuning=without).abstained


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
