"""The verifier: reads the question and one candidate sentence together (a cross-encoder).

The sentence scorer and the reader (rag.answer, rag.reader) compare the question with a
sentence from vectors computed apart. The verifier runs EmbeddingGemma once over the two
side by side ("task: question answering | query: …" then "title: none | text: …"), so
every word of the question attends to every word of the sentence, and a linear head on
the mean of the last layer gives the log-odds that the sentence states what is asked.

Trained by eval/train_verifier.py: low-rank adapters (LoRA, rank 8) on the attention and
feed-forward projections of the top 8 of the model's 24 layers, and the head, on pairs
from xquad_ar, xquad.en (English questions over the Arabic paragraphs) and mlqa_ar_dev:
the sentence that holds the gold answer against three other sentences of its paragraph.
No Persian was seen in training. The adapters ship in rag/verifier.npz (1.3 MB); the
base weights are the embedder's own, checked by their sha256.

Used by rag.answer in strict mode (Settings.verifier, off by default): where the
answerability model would answer, the verifier reads the scorer's best `top_k`
candidates; they are ordered by score + weight × its log-odds, and when none reaches the
threshold (rag/calibration.json, "verifier", fitted by eval/fit_verifier.py) the answer
abstains: the sources speak of the question's subject but do not state what is asked.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import zipfile
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("verifier.npz")
QUERY_PROMPT = "task: question answering | query: "
TEXT_PROMPT = "title: none | text: "
MAX_TOKENS = 128  # the pair, truncated in the sentence
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # the adapted projections of a layer's attention …
FEED_FORWARD = ("gate_proj", "up_proj", "down_proj")  # … and of its feed-forward block
# every forward pass runs on one thread: the CPU kernels keep per-thread scratch memory
# (measured: eight threads calling the model grew the process by 500 MB, against 60 MB)
_RUNNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="verifier")
_LOAD_LOCK = threading.Lock()


class VerifierError(RuntimeError):
    pass


class Verifier:
    """Cross-encoder log-odds that a sentence answers a question."""

    def __init__(self, folder: Path, weights_sha: str, dtype: str = "float32", weights: Path = WEIGHTS):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not weights.exists():
            raise VerifierError(f"the verifier's weights are missing: {weights}")
        try:
            with np.load(weights) as f:
                w = {k: f[k] for k in f.files}
            base = str(w["base_sha256"])
            head = w["head.weight"], w["head.bias"], float(w["alpha"]) / float(w["rank"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise VerifierError(f"the verifier's weights cannot be read ({weights}): {e!r}") from e
        if base != weights_sha:
            raise VerifierError(f"the verifier was trained on other base weights (sha256 {base[:12]}…, "
                                f"the model here is {weights_sha[:12]}…): set RAG_VERIFIER=off or retrain it")
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

    def score(self, question: str, sentences: list[str], batch: int = 16) -> np.ndarray:
        """Log-odds per sentence that it states the answer to `question`."""
        out = np.zeros(len(sentences), np.float32)
        for i in range(0, len(sentences), batch):
            part = sentences[i:i + batch]
            enc = self.tokenizer([QUERY_PROMPT + question] * len(part), [TEXT_PROMPT + s for s in part],
                                 truncation="only_second", max_length=MAX_TOKENS, padding=True, return_tensors="pt")
            h = _RUNNER.submit(self._forward, enc).result()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (h * mask).sum(1) / mask.sum(1)
            out[i:i + len(part)] = (pooled @ self.head_w + self.head_b).numpy()
        return out


@functools.lru_cache(maxsize=2)
def _load(model: str, models_dir: str, dtype: str, weights: str) -> Verifier:
    from rag.models import ensure_model, weights_hash

    folder = ensure_model(model, Path(models_dir))
    return Verifier(folder, weights_hash(folder), dtype, Path(weights))


def load_verifier(settings) -> Verifier | None:
    """The verifier for settings' model (loaded once per process, so a question in strict mode
    costs no model look-up), or None where it is off or the model is the tests' hash embedder.
    Weights that are missing, unreadable or of other base weights raise VerifierError: strict
    mode asked for never quietly answers as the default would."""
    if settings.verifier == "off" or settings.model.startswith("hash-"):
        return None
    from rag.embedding import resolve_dtype

    with _LOAD_LOCK:  # threads asking at once load it once
        return _load(settings.model, str(settings.models_dir), resolve_dtype(settings.dtype), str(WEIGHTS))


def warm_up(settings) -> None:
    """Load the verifier now where answers may need it, so that the first answer does not
    wait for it; one that cannot be loaded says so when an answer needs it."""
    try:
        v = load_verifier(settings)
    except VerifierError:
        return
    if v is not None:
        v.score("warm up", ["warm up"])  # the CPU kernels' first call is slow
