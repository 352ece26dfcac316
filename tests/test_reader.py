"""The reader: MaxSim over token vectors, re-ordering the scorer's top candidates, loading, settings."""

import dataclasses

import numpy as np
import pytest

from rag import reader as rd
from rag.answer import active_reader, retrieve_for_answer
from rag.embedding import HashEmbedder
from rag.scorer import score_sentences


def test_maxsim_both_ways():
    q = np.eye(3, dtype=np.float32)[:2]  # two question tokens
    s = np.eye(3, dtype=np.float32)[[0, 2]]  # the sentence holds the first of them and another token
    assert rd.maxsim(q, s) == (0.5, 0.5)
    assert rd.maxsim(q, q) == (1.0, 1.0)
    assert rd.maxsim(q, np.zeros((0, 3), np.float32)) == (0.0, 0.0)


def _reader(engine, top_k=4, **weights):
    """The engine's tuning with a reader of these weights (the engine itself is left as it is)."""
    w = {f: 0.0 for f in rd.ALL_FEATURES} | weights
    return engine.index.tuning.replace(reader=rd.Reader(w, top_k).to_dict())


def test_the_reader_reorders_only_the_top_candidates(tiny_engine):
    question = "پوتین ترامپ تماس دقیقه"
    index = tiny_engine.index
    q_vecs, q_tokens = tiny_engine.embedder.embed_queries_with_tokens([question])
    hits = retrieve_for_answer(index, question, q_vecs[0], tiny_engine.settings)
    scored, rows = score_sentences(index, hits, q_vecs[0], question, tiny_engine.settings)
    assert len(scored) >= 3
    reader = rd.Reader({f: 0.0 for f in rd.ALL_FEATURES} | {"maxsim_question": 1.0}, top_k=2)
    read = rd.read(reader, tiny_engine.embedder, index, scored, rows, q_tokens[0])
    assert {j for _, j, _ in read} == {j for _, j, _ in scored[:2]}  # only the top 2, re-ordered
    expected = sorted(scored[:2], key=lambda s: -rd.maxsim(q_tokens[0], tiny_engine.embedder.document_tokens(
        [index.sentence_text(s[1])])[0])[0])
    assert [j for _, j, _ in read] == [j for _, j, _ in expected]


def test_the_answerer_uses_the_reader_when_on(tiny_engine):
    s = dataclasses.replace(tiny_engine.settings, reader="on")
    assert active_reader(tiny_engine.index, s) is None  # nothing calibrated for the hash model
    question = "Geneva airport closed hours"
    off = tiny_engine.ask(question, settings=s)
    assert off.timings_ms["read"] == 0.0
    # a reader that prefers the sentence sharing fewest question words turns the answer around
    t = _reader(tiny_engine, top_k=2, maxsim_question=-10.0)
    on = tiny_engine.ask(question, settings=s, tuning=t)
    assert on.timings_ms["read"] > 0
    assert on.sentences[0] != off.sentences[0]
    assert tiny_engine.ask(question, settings=s.replace(reader="off"), tuning=t).sentences == off.sentences


def test_auto_reads_where_the_embedder_is_openvino_whatever_the_cpu(tiny_engine, monkeypatch):
    import rag.embedding

    t = _reader(tiny_engine)
    r = rd.Reader.from_dict(t["reader"])
    index = tiny_engine.index.with_tuning(t)
    auto = tiny_engine.settings  # reader="auto" by default
    torch_f32, openvino = HashEmbedder(256), HashEmbedder(256)
    torch_f32.backend, openvino.backend = "torch-float32", "openvino-int8"
    for native in (True, False):  # the CPU's flags change nothing that is answered
        monkeypatch.setattr(rag.embedding, "native_bf16", lambda n=native: n)
        assert active_reader(index, auto) is None
        assert active_reader(index, auto, torch_f32) is None
        assert active_reader(index, auto, openvino) == r
    assert active_reader(index, auto.replace(reader="on")) == r
    assert active_reader(index, auto.replace(reader="off")) is None


def test_a_reader_that_does_not_fit_is_a_clear_error():
    with pytest.raises(ValueError, match="missing weights: maxsim_sentence.*fit_reader.py.*RAG_READER=off"):
        rd.Reader.from_dict({"weights": {f: 0.0 for f in rd.ALL_FEATURES if f != "maxsim_sentence"}, "top_k": 4})
    with pytest.raises(ValueError, match="top_k 0"):
        rd.Reader.from_dict({"weights": {f: 0.0 for f in rd.ALL_FEATURES}, "top_k": 0})
    with pytest.raises(ValueError, match="reader must be auto, on or off"):
        from rag.config import Settings

        Settings(reader="sometimes")


def test_shipped_reader_loads():
    import json
    from importlib import resources

    data = json.loads(resources.files("rag").joinpath("calibration.json").read_text("utf-8"))
    r = rd.Reader.from_dict(data["embeddinggemma-300m"]["reader"])
    assert r.top_k >= 2 and r.weights["maxsim_question"] > 0
