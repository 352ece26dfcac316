"""Embedders: one interface, the sentence-transformers implementation, and a fast
deterministic one for tests. All return L2-normalised float32 arrays of shape (n, dim).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from rag import runtime
from rag.config import DTYPES
from rag.errors import ModelError
from rag.text import normalize, tokens

log = logging.getLogger(__name__)


# Vectors from two backends may share an index only if each is shown to agree with torch
# float32 at least this well (worst cosine over rag/agreement.txt; see rag.index)
MIN_AGREEMENT = 0.995
# torch's own precisions: float32 is the reference; bfloat16's worst cosine over
# rag/agreement.txt, measured on an AVX-512 BF16 host (tests/test_openvino.py re-checks it)
TORCH_AGREEMENT = {"torch-float32": 1.0, "torch-bfloat16": 0.9995}


class Embedder(ABC):
    model_id: str  # stored in the index manifest
    weights_sha256: str
    dim: int
    dtype: str = "float32"
    # how the vectors are computed (recorded in the index manifest): torch-float32 (the
    # reference), torch-bfloat16, openvino-int8, openvino-int8-bf16
    backend: str = "torch-float32"
    # the worst cosine to torch float32 measured for this backend's vectors (rag.openvino_backend
    # checks it at export; torch's bfloat16 is checked by the integration tests); 1.0 = the reference
    agreement: float = 1.0

    @abstractmethod
    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    # contextual vectors of each text's own tokens, L2-normalised (the reader that used them was
    # replaced by the judge; the OpenVINO export still checks them)
    def embed_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The query vectors and, from the same pass, each query's token vectors."""
        raise NotImplementedError(f"{type(self).__name__} has no token vectors")

    def document_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's token vectors, encoded as a document."""
        raise NotImplementedError(f"{type(self).__name__} has no token vectors")


def _normalise_rows(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)[:, :dim]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers folder, loaded offline on the CPU, once."""

    MAX_TOKENS = 512

    def __init__(self, folder: Path, model_id: str, weights_sha256: str, dim: int = 0, batch_size: int = 16,
                 dtype: str = "float32"):
        runtime.configure()  # offline, thread pools: before torch is first imported
        import torch
        from sentence_transformers import SentenceTransformer

        self.dtype = resolve_dtype(dtype)
        self.backend = f"torch-{self.dtype}"
        self.agreement = TORCH_AGREEMENT[self.backend]
        try:
            self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True,
                                             model_kwargs={"torch_dtype": getattr(torch, self.dtype)})
        except Exception as e:  # a damaged or foreign folder: say what to do, not a traceback
            raise ModelError(f"the model at {folder} cannot be loaded ({type(e).__name__}: {str(e)[:200]}): "
                             "if it is a fetched model, run `rag model fetch --verify` to re-check its files "
                             "(or delete the folder and run `rag model fetch`)") from e
        self.model.max_seq_length = min(self.model.max_seq_length or self.MAX_TOKENS, self.MAX_TOKENS)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        full = get_dim()
        self.dim = dim if 0 < dim < full else full
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.batch_size = batch_size
        prompts = getattr(self.model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._doc_prompt = prompts.get("document")
        self._lock = threading.Lock()  # torch modules are not safe to call concurrently
        self._prompt_tokens: dict[str | None, int] = {}  # prompt name → tokens it adds before the text

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            x = self.model.encode(list(texts), prompt_name=self._query_prompt, batch_size=self.batch_size,
                                  convert_to_numpy=True, show_progress_bar=False)
        return _normalise_rows(x, self.dim)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompt_kw = {"prompt_name": "document"} if self._doc_prompt else {}
        # the lock is taken batch by batch: a question asked while an update embeds waits for
        # one batch, not for the whole call (longest texts first, as encode itself orders them)
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts = []
        for start in range(0, len(order), self.batch_size):
            batch = [texts[i] for i in order[start:start + self.batch_size]]
            with self._lock:
                parts.append(self.model.encode(batch, batch_size=self.batch_size, convert_to_numpy=True,
                                               show_progress_bar=False, **prompt_kw))
        x = np.empty((len(texts), parts[0].shape[1]), dtype=parts[0].dtype)
        x[order] = np.concatenate(parts)
        return _normalise_rows(x, self.dim)

    def _with_tokens(self, texts: list[str], prompt_name: str | None) -> list[dict]:
        with self._lock:
            return self.model.encode(list(texts), prompt_name=prompt_name, batch_size=self.batch_size,
                                     output_value=None, convert_to_numpy=False, show_progress_bar=False)

    def _own_tokens(self, out: dict, prompt_name: str | None) -> np.ndarray:
        """The token vectors of the text itself: without <bos>, the prompt, <eos> and padding."""
        if prompt_name not in self._prompt_tokens:
            prompt = (self.model.prompts or {}).get(prompt_name, "") if prompt_name else ""
            # the prompt's trailing space joins the text's first token, so count the prompt without it
            self._prompt_tokens[prompt_name] = len(self.model.tokenizer(prompt.rstrip())["input_ids"]) - 1
        n = int(out["attention_mask"].sum())
        x = out["token_embeddings"][self._prompt_tokens[prompt_name]:n - 1].float().numpy()
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def embed_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        outs = self._with_tokens(texts, self._query_prompt)
        vecs = _normalise_rows(np.stack([o["sentence_embedding"].float().numpy() for o in outs]), self.dim)
        return vecs, [self._own_tokens(o, self._query_prompt) for o in outs]

    def document_tokens(self, texts: list[str]) -> list[np.ndarray]:
        prompt = "document" if self._doc_prompt else None
        return [self._own_tokens(o, prompt) for o in self._with_tokens(texts, prompt)] if texts else []


class HashEmbedder(Embedder):
    """Deterministic bag of hashed word and character-trigram features (tests only).

    Texts that share normalised words get high cosine; unrelated texts near zero.
    """

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.model_id = f"hash-{dim}"
        self.weights_sha256 = "none"
        self.backend = "hash"
        self.agreement = 0.0  # nothing like the model's vectors: never mixed with another backend's

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        feats = tokens(text)
        norm = normalize(text)
        feats += [norm[i:i + 3] for i in range(max(0, len(norm) - 2)) if " " not in norm[i:i + 3]]
        for f in feats:
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 40) & 1 else -1.0
        if not v.any():
            v[0] = 1.0
        return v

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise_rows(np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim)), self.dim)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed_queries(texts)

    def _tokens(self, text: str) -> np.ndarray:
        """One hashed vector per word: MaxSim over them counts shared words (what the tests need)."""
        words = tokens(text) or ["_"]
        return np.stack([self._vec(w) for w in words])

    def embed_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.embed_queries(texts), [_normalise_rows(self._tokens(t), self.dim) for t in texts]

    def document_tokens(self, texts: list[str]) -> list[np.ndarray]:
        return [_normalise_rows(self._tokens(t), self.dim) for t in texts]


def _flags(cpuinfo: str | None) -> set[str]:
    """The flags of a /proc/cpuinfo text (this machine's where None; none if it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    return runtime.cpu_flags(cpuinfo)


@functools.lru_cache(maxsize=4)
def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX). Without it torch
    emulates bfloat16, several times slower than float32."""
    return bool(_flags(cpuinfo) & runtime.BF16_FLAGS)


@functools.lru_cache(maxsize=4)
def amx_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has AMX (Intel's matrix tiles, bfloat16)."""
    return "amx_bf16" in _flags(cpuinfo)


def resolve_dtype(dtype: str, backend: str = "torch") -> str:
    """The precision `dtype` means for the embedding model run by `backend` (torch or openvino):
    the one asked for, on every CPU (no setting chooses by the CPU's flags: the same question
    gets the same answer everywhere)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use float32 or bfloat16")
    return dtype


def openvino_precision(dtype: str) -> str:
    """OpenVINO's name ("bf16" or "f32") for the precision the dtype setting means there."""
    return "bf16" if resolve_dtype(dtype, "openvino") == "bfloat16" else "f32"
