"""The OpenVINO embedder (rag/openvino_backend.py): its vectors agree with torch float32, it is
chosen by RAG_BACKEND and the CPU, recorded in the index manifest, and mixed with another
backend's vectors only where both are shown to agree with float32."""

import json

import numpy as np
import pytest

from rag import openvino_backend as ovb
from rag.config import Settings
from rag.embedding import (
    MIN_AGREEMENT,
    TORCH_AGREEMENT,
    HashEmbedder,
    amx_bf16,
    native_bf16,
)
from rag.index import IndexProblem, _check_compatible, built_backend
from rag.models import make_embedder
from rag.text import sentences

pytestmark = pytest.mark.filterwarnings("ignore")


class _Backend(HashEmbedder):
    """The hash embedder under another backend's name (for the manifest rules only)."""

    def __init__(self, backend: str, agreement: float):
        super().__init__(256)
        self.backend, self.agreement = backend, agreement


def _manifest(tiny_engine) -> dict:
    return json.loads((tiny_engine.settings.index_dir / "current" / "manifest.json").read_text("utf-8"))


def test_the_manifest_records_the_backend_and_its_agreement(tiny_engine):
    model = _manifest(tiny_engine)["model"]
    assert model["backend"] == "hash"
    assert model["agreement"] == 0.0


@pytest.mark.parametrize("built, agreement, asking, asking_agreement, ok", [
    ("torch-bfloat16", None, "openvino-int8-bf16", 0.9994, True),   # both shown to agree with float32
    ("openvino-int8", 0.9993, "torch-float32", 1.0, True),
    ("openvino-int8", 0.9993, "openvino-int8-bf16", 0.9994, True),
    ("openvino-int8", 0.98, "torch-float32", 1.0, False),          # the index's vectors are not
    ("torch-float32", None, "openvino-int8", 0.97, False),          # the question's are not
    ("hash", 0.0, "openvino-int8", 0.9994, False),                  # the test embedder never mixes
    ("openvino-int8", 0.9993, "openvino-int8", 0.9993, True),       # the same backend always
])
def test_vectors_of_two_backends_mix_only_where_both_agree_with_float32(
        tiny_engine, built, agreement, asking, asking_agreement, ok):
    manifest = _manifest(tiny_engine)
    manifest["model"]["backend"] = built
    if agreement is None:
        manifest["model"].pop("agreement")
    else:
        manifest["model"]["agreement"] = agreement
    embedder = _Backend(asking, asking_agreement)
    if ok:
        _check_compatible(manifest, None, embedder, tiny_engine.settings.index_dir)
    else:
        with pytest.raises(IndexProblem, match="run `rag index` to rebuild"):
            _check_compatible(manifest, None, embedder, tiny_engine.settings.index_dir)


def test_an_index_from_before_backends_were_recorded_counts_as_torch():
    assert built_backend({"dtype": "bfloat16"}) == ("torch-bfloat16", True)
    assert built_backend({}) == ("torch-float32", True)


def test_a_failed_export_is_not_tried_again_on_every_start(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    ovb.record_failure(folder, "abc", "it broke")
    assert ovb.failure(folder, "abc") == "it broke"
    assert ovb.failure(folder, "other weights") is None
    assert ovb.read_check(folder, "abc") is None


def test_agreement_sentences_cover_the_three_languages():
    texts = ovb.agreement_sentences()
    assert len(texts) >= 20
    assert any("\u0600" <= ch <= "\u06ff" for ch in "".join(texts))
    assert any(t.isascii() for t in texts)
    assert not any(t.startswith("#") for t in texts)


# ---- with the real model ------------------------------------------------------------------

def _corpus_sentences(limit: int = 48) -> list[str]:
    from pathlib import Path

    out = []
    for f in sorted(Path(__file__).resolve().parent.parent.glob("corpus/*.txt")):
        text = f.read_text("utf-8")
        out += [text[s.start:s.end] for s in sentences(text) if len(text[s.start:s.end].strip()) > 15]
    return out[:limit]


@pytest.fixture(scope="module")
def reference():
    return make_embedder(Settings(backend="torch", dtype="float32"))


@pytest.mark.model
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_openvino_vectors_agree_with_torch_float32_on_the_seed_corpus(reference, dtype):
    """Out of sample for the export's own check (rag/agreement.txt): the seed articles."""
    if dtype == "bfloat16" and not native_bf16():
        pytest.skip("bfloat16 is not native on this CPU")
    emb = make_embedder(Settings(backend="openvino", dtype=dtype))
    assert emb.backend == ("openvino-int8-bf16" if dtype == "bfloat16" else "openvino-int8")
    assert emb.agreement >= MIN_AGREEMENT
    texts = _corpus_sentences()
    for embed in ("embed_documents", "embed_queries"):
        a, b = getattr(emb, embed)(texts), getattr(reference, embed)(texts)
        assert a.shape == b.shape and a.dtype == np.float32
        cos = (a * b).sum(1)
        assert cos.min() >= MIN_AGREEMENT, (embed, float(cos.min()))
    # the reader's token vectors: the same tokens, and close
    vec, toks = emb.embed_queries_with_tokens(texts[:8])
    _, ref_toks = reference.embed_queries_with_tokens(texts[:8])
    assert [t.shape for t in toks] == [t.shape for t in ref_toks]
    assert np.mean([(x * y).sum(1).mean() for x, y in zip(toks, ref_toks, strict=True)]) > 0.99
    assert [t.shape for t in emb.document_tokens(texts[:4])] == [t.shape for t in reference.document_tokens(texts[:4])]


@pytest.mark.model
def test_torch_bfloat16_agrees_with_float32_as_recorded(reference):
    if not native_bf16():
        pytest.skip("bfloat16 is not native on this CPU (emulated, it is never chosen)")
    emb = make_embedder(Settings(backend="torch", dtype="bfloat16"))
    texts = ovb.agreement_sentences()
    cos = (emb.embed_documents(texts) * reference.embed_documents(texts)).sum(1)
    assert cos.min() >= TORCH_AGREEMENT["torch-bfloat16"] - 0.0005


@pytest.mark.model
def test_auto_uses_openvino_where_it_is_installed_and_torch_where_not(monkeypatch):
    emb = make_embedder(Settings())
    assert emb.backend.startswith("openvino-int8")
    assert (emb.dtype == "bfloat16") == amx_bf16()  # OpenVINO's bfloat16 pays only with AMX
    monkeypatch.setattr(ovb, "available", lambda: False)
    assert make_embedder(Settings()).backend.startswith("torch-")
    with pytest.raises(RuntimeError, match="openvino package is not installed"):
        make_embedder(Settings(backend="openvino"))


@pytest.mark.model
def test_the_export_records_its_check():
    from rag.models import ensure_model, weights_hash

    s = Settings()
    folder = ensure_model(s.model, s.models_dir)
    check = ovb.read_check(folder, weights_hash(folder))
    assert check is not None and check["sentences"] == len(ovb.agreement_sentences())
    assert check["precisions"]["f32"]["passed"] and check["precisions"]["f32"]["min_cosine"] >= MIN_AGREEMENT


def test_an_export_with_a_truncated_or_missing_file_is_made_again(tmp_path):
    folder = tmp_path / "m"
    out = ovb.export_dir(folder)
    out.mkdir(parents=True)
    (out / "model.xml").write_text("<net/>")
    (out / "model.bin").write_bytes(b"\0" * 100)
    check = {"format": ovb.FORMAT, "source_sha256": "abc", "files": {"model.xml": 6, "model.bin": 100},
             "precisions": {"f32": {"min_cosine": 0.999, "passed": True}}}
    (out / "check.json").write_text(json.dumps(check))
    assert ovb.read_check(folder, "abc") == check
    (out / "model.bin").write_bytes(b"\0" * 50)  # an interrupted copy
    assert ovb.read_check(folder, "abc") is None
    (out / "model.bin").unlink()
    assert ovb.read_check(folder, "abc") is None
    (out / "check.json").write_text("[1, 2]")
    assert ovb.read_check(folder, "abc") is None
