"""The embedding model through OpenVINO, with 8-bit weights: the same vectors, about twice as fast.

Indexing is bound by the embedder. `eval/bench_embedders.py` measured the ways to run
EmbeddingGemma on these CPUs; what ships is the whole sentence-transformers pipeline
(transformer, mean pooling, both Dense layers, normalisation) exported once through ONNX
to OpenVINO, its weights compressed to int8 by NNCF (weight-only: activations stay in
float), run in float32 (AVX2 hosts) or bfloat16 (hosts that compute it natively).

- `export()` makes `<models_dir>/<model>.openvino-int8/` from the fetched model: the torch
  model in float32 is traced to ONNX (with the attention mask built here: transformers'
  own mask code cannot be traced), converted, compressed and saved; then `check()` embeds
  `rag/agreement.txt` with it and with torch float32. The variant is used only if every
  sentence's cosine to float32 is at least `MIN_COSINE` (`check.json` keeps the numbers;
  the index manifest records them: rag.index).
- Sentence-transformers' own `backend="openvino"` gives wrong vectors for this model
  (cosine .15-.52 to float32), and direct torch-to-OpenVINO conversion fails with this
  torch: hence the ONNX route.
- `OpenVINOEmbedder` needs no torch at run time: the tokenizer is the model folder's
  `tokenizer.json` (the `tokenizers` library), the prompts its sentence-transformers config.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from rag.embedding import Embedder, _normalise_rows, native_bf16
from rag.progress import OnProgress

FORMAT = 2  # of the exported folder (2: check.json records the files' sizes); another format is exported again
SUFFIX = ".openvino-int8"
MIN_COSINE = 0.995  # every check sentence's vector against torch float32 (rag.embedding.MIN_AGREEMENT)
PRECISIONS = ("f32", "bf16")
MAX_TOKENS = 512
AGREEMENT_TEXT = Path(__file__).with_name("agreement.txt")


class ExportError(RuntimeError):
    """The model could not be exported, or its vectors do not agree with float32."""


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def export_dir(model_folder: Path) -> Path:
    return model_folder.with_name(model_folder.name + SUFFIX)


EXPORTED = ("model.xml", "model.bin")


def _sizes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_size for name in EXPORTED if (folder / name).is_file()}


def read_check(model_folder: Path, weights_sha256: str) -> dict | None:
    """The agreement check of the folder's export, if the export is there whole (its files of
    the sizes written: a truncated or missing file means export again, as the model's weights
    are trusted by size), of this format and from these weights; else None."""
    folder = export_dir(model_folder)
    try:
        check = json.loads((folder / "check.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(check, dict) and check.get("format") == FORMAT and check.get("source_sha256") == weights_sha256
          and check.get("files") == _sizes(folder) and len(check["files"]) == len(EXPORTED))
    return check if ok else None


def _failure_file(model_folder: Path) -> Path:
    return model_folder.with_name(model_folder.name + SUFFIX + ".failed")


def failure(model_folder: Path, weights_sha256: str) -> str | None:
    """Why the last export of these weights failed, if it did."""
    try:
        rec = json.loads(_failure_file(model_folder).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return rec.get("error") if rec.get("source_sha256") == weights_sha256 else None


def record_failure(model_folder: Path, weights_sha256: str, error: str) -> None:
    _failure_file(model_folder).write_text(json.dumps({"source_sha256": weights_sha256, "error": error}), "utf-8")


def agreement_sentences() -> list[str]:
    return [line.strip() for line in AGREEMENT_TEXT.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _prompts(model_folder: Path) -> dict[str, str]:
    try:
        cfg = json.loads((model_folder / "config_sentence_transformers.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return cfg.get("prompts") or {}


def pad(id_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists as one right-padded int64 batch, and its attention mask."""
    width = max(len(ids) for ids in id_lists)
    ids, mask = np.zeros((len(id_lists), width), np.int64), np.zeros((len(id_lists), width), np.int64)
    for row, one in enumerate(id_lists):
        ids[row, :len(one)], mask[row, :len(one)] = one, 1
    return ids, mask


def attention_bias(attention_mask):
    """The additive attention mask of a traced export: bidirectional attention over the real
    tokens. The sliding window (512) spans every input (≤ 512 tokens), so both layer kinds
    take the same one (transformers' own mask code cannot be traced)."""
    import torch

    bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
    return {"full_attention": bias, "sliding_attention": bias}


def _traceable(st):
    """The sentence-transformers pipeline as one traceable module: (input_ids, attention_mask)
    → (token vectors, sentence vector). torch is imported here, at export only."""
    import torch

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.st = st

        def forward(self, input_ids, attention_mask):
            hidden = self.st[0].auto_model(
                input_ids=input_ids, attention_mask=attention_bias(attention_mask)).last_hidden_state
            features = {"token_embeddings": hidden, "attention_mask": attention_mask}
            for module in list(self.st)[1:]:
                features = module(features)
            return features["token_embeddings"], features["sentence_embedding"]

    return Whole().eval()


def export(model_folder: Path, weights_sha256: str, on_progress: OnProgress | None = None) -> dict:
    """Export, compress and check the model; returns the check (see module doc). Atomic: the
    folder appears only complete. Raises ExportError when a step fails or the check does."""
    import openvino as ov

    progress = on_progress or (lambda *a: None)
    stage = "exporting the model to OpenVINO (once)"
    target = export_dir(model_folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        try:
            import nncf
            import torch
            from sentence_transformers import SentenceTransformer

            progress(stage, 0, 4)
            st = SentenceTransformer(str(model_folder), device="cpu", local_files_only=True,
                                     model_kwargs={"torch_dtype": torch.float32, "attn_implementation": "eager"})
            whole = _traceable(st)
            enc = st.tokenizer(["ایران و عربستان", "hello"], padding=True, return_tensors="pt")
            with torch.no_grad():
                torch.onnx.export(
                    whole, (enc["input_ids"], enc["attention_mask"]), str(tmp / "model.onnx"), dynamo=False,
                    input_names=["input_ids", "attention_mask"], output_names=["token_embeddings", "sentence_embedding"],
                    dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                  "token_embeddings": {0: "batch", 1: "tokens"}, "sentence_embedding": {0: "batch"}},
                    opset_version=17)
            progress(stage, 1, 4)
            model = ov.convert_model(str(tmp / "model.onnx"))
            progress(stage, 2, 4)
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
            out = tmp / "out"
            ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
            del model
            (tmp / "model.onnx").unlink()
            progress(stage, 3, 4)
            check = _check(st, model_folder, out)
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the toolchain: say so, the caller falls back
            raise ExportError(f"exporting {model_folder.name} to OpenVINO failed ({type(e).__name__}: {str(e)[:300]})") from e
        check.update(format=FORMAT, source_sha256=weights_sha256, seconds=round(time.perf_counter() - t0, 1),
                     openvino=ov.__version__, files=_sizes(out))
        (out / "check.json").write_text(json.dumps(check, indent=2), "utf-8")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
        _failure_file(model_folder).unlink(missing_ok=True)
        progress(stage, 4, 4)
    return check


def _check(st, model_folder: Path, ov_dir: Path) -> dict:
    """Every agreement sentence embedded as a query and as a document, by torch float32 and by
    the export in each precision this CPU runs: the worst and mean cosine per precision, and
    whether it passes. Token vectors (the reader's) are compared too."""
    texts = agreement_sentences()
    prompts = _prompts(model_folder)
    ref = {kind: st.encode([prompts.get(kind, "") + t for t in texts], batch_size=8, output_value=None,
                           convert_to_numpy=False, show_progress_bar=False) for kind in ("query", "document")}
    result: dict = {"sentences": len(texts), "min_cosine_required": MIN_COSINE, "precisions": {}}
    for precision in PRECISIONS:
        if precision == "bf16" and not native_bf16():
            continue
        emb = OpenVINOEmbedder(model_folder, ov_dir, model_id="check", weights_sha256="", precision=precision)
        cos, tok = [], []
        for kind in ("query", "document"):
            outs = emb._run([prompts.get(kind, "") + t for t in texts])
            for (vec, toks), r in zip(outs, ref[kind], strict=True):
                rv = r["sentence_embedding"].float().numpy()
                cos.append(float(vec @ rv / (np.linalg.norm(vec) * np.linalg.norm(rv))))
                rt = r["token_embeddings"].float().numpy()[:len(toks)]
                num = (toks * rt).sum(1)
                tok.append(float(np.min(num / (np.linalg.norm(toks, axis=1) * np.linalg.norm(rt, axis=1) + 1e-12))))
        result["precisions"][precision] = {
            "min_cosine": round(min(cos), 5), "mean_cosine": round(float(np.mean(cos)), 6),
            "min_token_cosine": round(min(tok), 5), "passed": min(cos) >= MIN_COSINE}
    if not any(p["passed"] for p in result["precisions"].values()):
        raise ExportError(f"the OpenVINO export's vectors do not agree with float32 (cosine below {MIN_COSINE}): "
                          f"{result['precisions']}")
    return result


class OpenVINOEmbedder(Embedder):
    """The exported model, compiled for the CPU; neither torch nor sentence-transformers is
    imported (the export needs them, the embedder does not)."""

    def __init__(self, model_folder: Path, ov_dir: Path, model_id: str, weights_sha256: str, dim: int = 0,
                 batch_size: int = 16, precision: str = "f32", threads: int = 0):
        import openvino as ov
        from tokenizers import Tokenizer

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(Path(ov_dir) / "model.xml"), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tokenizer = Tokenizer.from_file(str(Path(model_folder) / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.prompts = _prompts(Path(model_folder))
        full = int(self.compiled.output("sentence_embedding").get_partial_shape()[1].get_length())
        self.dim = dim if 0 < dim < full else full
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.batch_size = batch_size
        self.precision = precision
        self.dtype = {"f32": "float32", "bf16": "bfloat16"}[precision]
        self.backend = "openvino-int8" + ("-bf16" if precision == "bf16" else "")
        self._lock = threading.Lock()  # one infer request, used by one caller at a time
        self._prompt_tokens: dict[str, int] = {}

    def _run(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(sentence vector, token vectors of the whole input) per text, in order. Batches are
        formed longest first (unsorted batches cost a third more padding work)."""
        encs = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
        out: list = [None] * len(encs)
        for start in range(0, len(order), self.batch_size):
            part = order[start:start + self.batch_size]
            ids, mask = pad([encs[i].ids for i in part])
            with self._lock:
                res = self.request.infer({"input_ids": ids, "attention_mask": mask})
                tokens = np.array(res["token_embeddings"], dtype=np.float32)
                vecs = np.array(res["sentence_embedding"], dtype=np.float32)
            for row, i in enumerate(part):
                out[i] = (vecs[row], tokens[row, :len(encs[i].ids)])
        return out

    def _vectors(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise_rows(np.stack([v for v, _ in self._run([prompt + t for t in texts])]), self.dim)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._vectors(texts, self.prompts.get("query", ""))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._vectors(texts, self.prompts.get("document", ""))

    def _own(self, tokens: np.ndarray, prompt: str) -> np.ndarray:
        """The text's own token vectors: without <bos>, the prompt and <eos> (as rag.embedding)."""
        if prompt not in self._prompt_tokens:
            # the prompt's trailing space joins the text's first token: count it without
            self._prompt_tokens[prompt] = len(self.tokenizer.encode(prompt.rstrip()).ids) - 1
        x = tokens[self._prompt_tokens[prompt]:len(tokens) - 1]
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def embed_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        prompt = self.prompts.get("query", "")
        outs = self._run([prompt + t for t in texts])
        return (_normalise_rows(np.stack([v for v, _ in outs]), self.dim),
                [self._own(t, prompt) for _, t in outs])

    def document_tokens(self, texts: list[str]) -> list[np.ndarray]:
        prompt = self.prompts.get("document", "")
        return [self._own(t, prompt) for _, t in self._run([prompt + t for t in texts])] if texts else []
