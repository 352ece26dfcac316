"""The judge: reads the question and one candidate sentence together (a cross-encoder).

The sentence scorer (rag.scorer) compares the question with a sentence from vectors
computed apart. The judge runs EmbeddingGemma once over the two side by side ("task:
question answering | query: …" then "title: none | text: …"), so every word of the
question attends to every word of the sentence, and a linear head on the mean of the last
layer gives the log-odds that the sentence states what is asked.

Trained by eval/train_verifier.py: low-rank adapters (LoRA, rank 8) on the attention and
feed-forward projections of the top 8 of the model's 24 layers, and the head, on pairs
from xquad_ar, xquad.en (English questions over the Arabic paragraphs) and mlqa_ar_dev:
the sentence that holds the gold answer against three other sentences of its paragraph.
No Persian was seen in training. The adapters ship in rag/verifier.npz (1.3 MB); the
base weights are the embedder's own, checked by their sha256. (The module and file keep
the name they had when it only verified; since the judge issue it decides every answer.)

Used by rag.answer for every answer, in every language pair: it reads the scorer's best
`top_k` candidates, the answer leads with its best one, and abstains when that one's
log-odds are under the one threshold (rag/calibration.json, "judge", fitted by
eval/fit_judge.py): the sources speak of the question's subject but do not state what is
asked, or speak of something else.

It runs through OpenVINO where that is installed (as the embedder does): the adapted
model and its head are exported once, through ONNX, to
`<models_dir>/<model>.verifier-<weights' sha256>.openvino-int8/`, weights compressed to
int8, and used only when its log-odds on `check_pairs()` agree with torch float32's
within MAX_DRIFT (`check.json`). That needs no torch when answering: about 1 s to compile
against about 6 s to import and load the torch model. Elsewhere, or when the export
fails (a warning says why), `Verifier` runs it in torch.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("verifier.npz")
QUERY_PROMPT = "task: question answering | query: "
TEXT_PROMPT = "title: none | text: "
MAX_TOKENS = 128  # the pair, truncated in the sentence
MAX_DRIFT = 0.35  # the OpenVINO export's log-odds against torch float32's, at most (the threshold is +0.70)
EXPORT_FORMAT = 2  # 2: the pooled states are an output too (eval/fit_judge.py reads them)
log = logging.getLogger(__name__)
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # the adapted projections of a layer's attention …
FEED_FORWARD = ("gate_proj", "up_proj", "down_proj")  # … and of its feed-forward block
# every forward pass runs on one thread: the CPU kernels keep per-thread scratch memory
# (measured in torch: eight threads calling the model grew the process by 500 MB, against 105 MB)
_RUNNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="verifier")
_LOAD_LOCK = threading.Lock()


class VerifierError(RuntimeError):
    pass


def read_weights(weights: Path, weights_sha: str) -> dict:
    """The adapters and head in `weights`; VerifierError when they are missing, cannot be
    read, or were trained on other base weights than `weights_sha`."""
    if not weights.exists():
        raise VerifierError(f"the verifier's weights are missing: {weights}")
    try:
        with np.load(weights) as f:
            w = {k: f[k] for k in f.files}
        base = str(w["base_sha256"])
        w["_scale"] = float(w["alpha"]) / float(w["rank"])
        _ = w["head.weight"], w["head.bias"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise VerifierError(f"the verifier's weights cannot be read ({weights}): {e!r}") from e
    if base != weights_sha:
        raise VerifierError(f"the verifier was trained on other base weights (sha256 {base[:12]}…, "
                            f"the model here is {weights_sha[:12]}…): retrain it (eval/train_verifier.py) or reinstall")
    return w


class Verifier:
    """Cross-encoder log-odds that a sentence answers a question (torch)."""

    def __init__(self, folder: Path, weights_sha: str, dtype: str = "float32", weights: Path = WEIGHTS):
        import torch
        from transformers import AutoModel, AutoTokenizer

        w = read_weights(weights, weights_sha)
        head = w["head.weight"], w["head.bias"], w["_scale"]
        self.torch = torch
        self.dtype = getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModel.from_pretrained(str(folder), dtype=self.dtype).eval()
        scale = head[2]
        with torch.no_grad():
            for key in [k[:-2] for k in w if k.endswith(".A")]:
                layer, name = key.split(".")
                block = model.layers[int(layer)]
                lin = getattr(block.self_attn if name in ATTENTION else block.mlp, name)
                delta = torch.from_numpy(w[f"{key}.B"].astype(np.float32) @ w[f"{key}.A"].astype(np.float32)) * scale
                lin.weight.copy_((lin.weight.float() + delta).to(self.dtype))
        self.model = model
        self.head_w = torch.from_numpy(head[0].astype(np.float32)).reshape(-1)
        self.head_b = float(head[1].reshape(-1)[0])

    def _forward(self, enc):
        """The last layer's states (run on _RUNNER's thread)."""
        with self.torch.inference_mode():
            return self.model(**enc).last_hidden_state.float()

    def pooled(self, pairs: list[tuple[str, str]], batch: int = 16) -> np.ndarray:
        """The mean of the last layer per (question, sentence) pair: what the head reads
        (eval/fit_judge.py fits the head on it)."""
        out = np.zeros((len(pairs), self.head_w.shape[0]), np.float32)
        for i in range(0, len(pairs), batch):
            part = pairs[i:i + batch]
            enc = self.tokenizer([QUERY_PROMPT + q for q, _ in part], [TEXT_PROMPT + s for _, s in part],
                                 truncation="only_second", max_length=MAX_TOKENS, padding=True, return_tensors="pt")
            h = _RUNNER.submit(self._forward, enc).result()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out[i:i + len(part)] = ((h * mask).sum(1) / mask.sum(1)).numpy()
        return out

    def score(self, question: str, sentences: list[str], batch: int = 16) -> np.ndarray:
        """Log-odds per sentence that it states the answer to `question`."""
        if not sentences:
            return np.zeros(0, np.float32)
        pooled = self.pooled([(question, s) for s in sentences], batch)
        return (pooled @ self.head_w.numpy() + self.head_b).astype(np.float32)


class OpenVINOVerifier:
    """The exported verifier (see the module doc), compiled for the CPU; no torch."""

    def __init__(self, folder: Path, ov_dir: Path, precision: str = "f32"):
        import openvino as ov
        from tokenizers import Tokenizer

        self.compiled = ov.Core().compile_model(str(ov_dir / "model.xml"), "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))  # as transformers' for these pairs
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
        self.tokenizer.no_padding()
        self.backend = f"openvino-int8-{precision}"

    def _forward(self, ids: np.ndarray, mask: np.ndarray, output: str = "logit") -> np.ndarray:
        """The log-odds (or pooled states) of a padded batch (run on _RUNNER's thread: one infer request)."""
        return np.array(self.request.infer({"input_ids": ids, "attention_mask": mask})[output], np.float32)

    def _run(self, pairs: list[tuple[str, str]], output: str, batch: int) -> list[np.ndarray]:
        from rag.openvino_backend import pad

        encs = self.tokenizer.encode_batch([(QUERY_PROMPT + q, TEXT_PROMPT + s) for q, s in pairs])
        out = []
        for i in range(0, len(encs), batch):
            ids, mask = pad([e.ids for e in encs[i:i + batch]])
            out.append(_RUNNER.submit(self._forward, ids, mask, output).result())
        return out

    def pooled(self, pairs: list[tuple[str, str]], batch: int = 16) -> np.ndarray:
        """The mean of the last layer per (question, sentence) pair (see Verifier.pooled)."""
        return np.concatenate(self._run(pairs, "pooled", batch)) if pairs else np.zeros((0, 768), np.float32)

    def score(self, question: str, sentences: list[str], batch: int = 16) -> np.ndarray:
        """Log-odds per sentence that it states the answer to `question`."""
        if not sentences:
            return np.zeros(0, np.float32)
        return np.concatenate([x.reshape(-1) for x in self._run([(question, s) for s in sentences], "logit", batch)])


def check_pairs() -> list[tuple[str, str]]:
    """Question–sentence pairs the export is checked on: rag/agreement.txt's sentences
    (Persian, Arabic, English news), each with a question in the three languages."""
    from rag.openvino_backend import agreement_sentences

    questions = ("مدت تماس تلفنی چقدر بود؟", "من التقى وزير الخارجية؟", "What did the minister say about the talks?")
    return [(q, s) for s in agreement_sentences() for q in questions]


def export_dir(folder: Path, weights: Path = WEIGHTS) -> Path:
    """Where the export of `weights` is kept: named by their sha256 and the export's format, so
    that checkouts of different formats (or weights) never replace each other's."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    return folder.parent / f"{folder.name}.verifier-{digest}.openvino-int8-v{EXPORT_FORMAT}"


def export_openvino(folder: Path, weights_sha: str, weights: Path = WEIGHTS, on_progress=None) -> dict:
    """Export the adapted model and head to OpenVINO (int8 weights) and check it against torch
    float32 (every pair of check_pairs within MAX_DRIFT); returns the check. Atomic: the
    folder appears only complete and checked. Raises VerifierError when it cannot be made."""
    import nncf
    import openvino as ov
    import torch

    from rag import openvino_backend as ovb

    progress = on_progress or (lambda *a: None)
    stage = "exporting the verifier to OpenVINO (once)"
    target = export_dir(folder, weights)
    t0 = time.perf_counter()
    progress(stage, 0, 4)
    ref = Verifier(folder, weights_sha, "float32", weights)
    ref.model.config._attn_implementation = "eager"  # traceable

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = ref.model

        def forward(self, input_ids, attention_mask):
            h = self.model(input_ids=input_ids, attention_mask=ovb.attention_bias(attention_mask)).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(torch.float32)
            pooled = (h * m).sum(1) / m.sum(1)
            return pooled @ ref.head_w + ref.head_b, pooled

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        tmp = Path(tmp)
        try:
            enc = ref.tokenizer([QUERY_PROMPT + "چه کسی؟", QUERY_PROMPT + "who?"],
                                [TEXT_PROMPT + "ایران و عربستان", TEXT_PROMPT + "hello there"],
                                padding=True, return_tensors="pt")
            with torch.no_grad():
                torch.onnx.export(Whole().eval(), (enc["input_ids"], enc["attention_mask"]), str(tmp / "v.onnx"),
                                  dynamo=False, input_names=["input_ids", "attention_mask"], output_names=["logit", "pooled"],
                                  dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                                "attention_mask": {0: "batch", 1: "tokens"}, "logit": {0: "batch"},
                                                "pooled": {0: "batch"}},
                                  opset_version=17)
            progress(stage, 1, 4)
            model = nncf.compress_weights(ov.convert_model(str(tmp / "v.onnx")), mode=nncf.CompressWeightsMode.INT8_ASYM)
            out = tmp / "out"
            ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
            del model
            (tmp / "v.onnx").unlink()
            progress(stage, 2, 4)
            pairs = check_pairs()
            want = np.concatenate([ref.score(q, [s]) for q, s in pairs])
            from rag.embedding import native_bf16

            check: dict = {"format": EXPORT_FORMAT, "source_sha256": weights_sha, "pairs": len(pairs),
                           "max_drift_allowed": MAX_DRIFT, "precisions": {}}
            for precision in ("f32", "bf16") if native_bf16() else ("f32",):
                compiled = OpenVINOVerifier(folder, out, precision)
                got = np.concatenate([compiled.score(q, [s]) for q, s in pairs])
                drift = float(np.abs(got - want).max())
                check["precisions"][precision] = {"max_drift": round(drift, 4),
                                                  "mean_drift": round(float(np.abs(got - want).mean()), 4),
                                                  "passed": drift <= MAX_DRIFT}
            progress(stage, 3, 4)
        except Exception as e:  # noqa: BLE001 - any failure of the toolchain: say so, torch serves instead
            raise VerifierError(f"exporting the verifier to OpenVINO failed ({type(e).__name__}: {str(e)[:300]})") from e
        if not all(p["passed"] for p in check["precisions"].values()):
            raise VerifierError(f"the verifier's OpenVINO export drifts from torch float32: {check['precisions']}")
        check["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "check.json").write_text(json.dumps(check, indent=2), "utf-8")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    progress(stage, 4, 4)
    return check


def _exported(folder: Path, weights_sha: str, weights: Path, on_progress=None, retry: bool = False) -> Path | None:
    """The checked export's folder (made now if missing), or None where OpenVINO is not
    installed or the export cannot be made (a warning says why; a failed export is not tried
    again at every start, only with `retry`: `rag model fetch`)."""
    from rag import openvino_backend as ovb

    if not ovb.available():
        return None
    target = export_dir(folder, weights)
    failed = target.with_name(target.name + ".failed")
    try:
        check = json.loads((target / "check.json").read_text("utf-8"))
        if check.get("format") == EXPORT_FORMAT and check.get("source_sha256") == weights_sha:
            return target
    except (OSError, ValueError):
        pass
    if failed.exists() and not retry:
        log.warning("the verifier's OpenVINO export failed before (%s); torch serves instead "
                    "(`rag model fetch` tries again)", failed.read_text("utf-8").strip()[:300])
        return None
    try:
        export_openvino(folder, weights_sha, weights, on_progress)
    except VerifierError as e:
        failed.write_text(str(e), "utf-8")
        log.warning("%s; torch serves instead", e)
        return None
    failed.unlink(missing_ok=True)
    return target


def prepare(settings, on_progress=None) -> str:
    """Make the verifier's OpenVINO export if it is missing or failed before (`rag model
    fetch`); one line on what answers will use."""
    if settings.model.startswith("hash-") or settings.backend == "torch":
        return "judge: torch"
    from rag.models import ensure_model, weights_hash

    folder = ensure_model(settings.model, settings.models_dir)
    sha = weights_hash(folder)
    try:
        read_weights(WEIGHTS, sha)
    except VerifierError as e:  # e.g. another model: answers go without it
        return f"judge: not for this model ({e})"
    target = _exported(folder, sha, WEIGHTS, on_progress, retry=True)
    if target is None:
        return "judge: torch (no OpenVINO export: see the warning above)"
    check = json.loads((target / "check.json").read_text("utf-8"))
    drift = ", ".join(f"{p} {c['max_drift']}" for p, c in check["precisions"].items())
    return f"judge: OpenVINO export at {target} (largest log-odds drift from torch float32: {drift})"


@functools.lru_cache(maxsize=2)
def _load(model: str, models_dir: str, dtype: str, weights: str, backend: str = "auto") -> Verifier | OpenVINOVerifier:
    """`dtype`: the setting (float32 or bfloat16), as the embedder's."""
    from rag.embedding import openvino_precision, resolve_dtype
    from rag.models import ensure_model, weights_hash

    folder = ensure_model(model, Path(models_dir))
    sha = weights_hash(folder)
    read_weights(Path(weights), sha)  # a clear error before any export
    ov_dir = _exported(folder, sha, Path(weights), _progress()) if backend != "torch" else None
    if ov_dir is not None:
        try:
            return OpenVINOVerifier(folder, ov_dir, openvino_precision(dtype))
        except Exception as e:  # noqa: BLE001 - a damaged export: say where it is and what to run
            raise VerifierError(f"the verifier's OpenVINO export at {ov_dir} cannot be loaded ({type(e).__name__}: "
                                f"{' '.join(str(e).split())[:200]}): delete that folder and run `rag model fetch`") from e
    return Verifier(folder, sha, resolve_dtype(dtype), Path(weights))


def _progress():
    from rag.progress import TerminalProgress

    return TerminalProgress()


def _ready(settings) -> bool:
    """Whether loading the verifier needs no download and no export."""
    from rag import openvino_backend as ovb
    from rag.models import model_on_disk, model_path

    if not model_on_disk(settings.model, settings.models_dir):
        return False
    if settings.backend == "torch" or not ovb.available():
        return True
    try:
        return (export_dir(model_path(settings.model, settings.models_dir), WEIGHTS) / "check.json").exists()
    except OSError:  # the weights file cannot be read: loading says so
        return False


def load_verifier(settings) -> Verifier | OpenVINOVerifier | None:
    """The verifier for settings' model (loaded once per process: the OpenVINO export, made
    now if missing, unless settings.backend is torch; else torch), or None where it is off
    or the model is the tests' hash embedder.
    Weights that are missing, unreadable or of other base weights raise VerifierError: answers
    never quietly go without the judge that was fitted to decide them."""
    if settings.model.startswith("hash-"):
        return None
    backend = "torch" if settings.backend == "torch" else "auto"
    with _LOAD_LOCK:  # threads asking at once load it once
        return _load(settings.model, str(settings.models_dir), settings.dtype, str(WEIGHTS), backend)


def warm_up(settings, make: bool = True) -> None:
    """Load the verifier now where answers may need it, so that the first answer does not
    wait for it; one that cannot be loaded says so when an answer needs it. With `make`
    False, only where nothing must be downloaded or exported first (`rag ask` warms it up
    in a thread that dies with the process, which would leave an export half made)."""
    if not make and not _ready(settings):
        return
    try:
        v = load_verifier(settings)
    except VerifierError:
        return
    if v is not None:
        v.score("warm up", ["warm up"])  # the CPU kernels' first call is slow
