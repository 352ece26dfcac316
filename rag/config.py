"""The one typed settings object shared by the CLI, the app and the evaluation.

Every field has a default; environment variables `RAG_<FIELD>` (upper case) override
them, and callers override per call with `settings.replace(field=value)`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Literal

from rag.stores.base import StoreSpec, parse_store

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[str, ...] = ("hybrid", "dense", "lexical")


def _default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag" / "models"


DTYPES = ("float32", "bfloat16")  # the precisions the embedder can compute in
BACKENDS = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class Settings:
    # where things live
    project_root: Path = field(default_factory=Path.cwd)
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    models_dir: Path = field(default_factory=_default_models_dir)

    # embedding model: a known name (see rag/models.py), a sentence-transformers
    # folder, or a model name already in the local Hugging Face cache
    model: str = "embeddinggemma-300m"
    dim: int = 0  # 0 = the model's full dimension; else Matryoshka truncation
    batch_size: int = 16
    # float32 (the same answers on every CPU) or bfloat16 (faster where the CPU computes it
    # natively, AVX-512 BF16 or AMX; vectors differ slightly, so answers may too)
    dtype: str = "float32"
    # how the model runs: openvino = the model exported once to OpenVINO with 8-bit weights
    # (rag/openvino_backend.py: about twice torch's speed, cosine to float32 >= .995, checked
    # at export); torch = sentence-transformers; auto = openvino where it is installed and its
    # export passed the check, else torch
    backend: str = "auto"

    max_file_mb: int = 20  # larger corpus files are skipped with a message

    # chunking (characters); passages must fit the model's 512-token window
    chunk_size: int = 800
    chunk_overlap: int = 0
    # FAISS over sentence vectors: auto = exact (flat) below 50k sentences, IVF with 8-bit
    # scalar quantisation above (rag/dense.py; chosen by eval/bench_scale.py); or flat, hnsw, ivf
    faiss: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    faiss_probe: int = 0  # IVF lists / HNSW efSearch per query; 0 = the default (rag.dense)
    # where vectors and BM25 are searched (rag/stores): faiss (the index folder), milvus (Milvus
    # Lite in index/milvus.db), milvus:///path/to/file.db, or milvus://host:19530 (a server or cluster)
    store: str = "faiss"

    # retrieval
    k: int = 5
    mode: Mode = "hybrid"
    candidates: int = 50  # per retriever, before fusion
    # hybrid: a convex mix of scores (cosine, BM25/max) or weighted reciprocal ranks; the
    # defaults won the sweep in eval/bench_retrieval.py (never below dense on any dev set)
    fusion: Literal["rrf", "convex"] = "convex"
    dense_weight: float = 0.5  # hybrid: weight of the dense side
    rrf_k: int = 60

    # answering
    answer_passages: int = 3  # sentences are taken from this many top passages
    max_sentences: int = 2  # the answer: the sentence that answers, and at most one more for the same event
    # where an answer's second and third sentences may come from: the first one's document
    # (the same event), or any retrieved passage
    extra_sentences: Literal["same-document", "any"] = "same-document"
    # a follow-up's in-context reading adds this to the scores of passages from the documents
    # the previous answer cited (rag/conversation.py)
    prefer_boost: float = 0.1
    # None = the fitted one: the judge's log-odds threshold (rag/calibration.json, "judge"),
    # or the index's `rag eval --calibrate` value
    abstain_threshold: float | None = None

    # date filter (ISO dates, inclusive): only documents dated in the range are retrieved;
    # with a filter set, documents without a date are left out (their date is unknown)
    since: str | None = None
    until: str | None = None

    # the HTTP API (rag/api.py, docs/api.md): the bearer token its requests must carry (required
    # to bind beyond localhost; never shown in repr), and the browser origins allowed to call it
    # (comma-separated; "" = no CORS headers)
    api_token: str | None = field(default=None, repr=False)
    api_cors_origins: str = ""

    def __post_init__(self) -> None:
        root = Path(self.project_root).resolve()
        object.__setattr__(self, "project_root", root)
        for name in ("corpus_dir", "index_dir"):
            p = Path(getattr(self, name)).expanduser()
            object.__setattr__(self, name, p if p.is_absolute() else root / p)
        object.__setattr__(self, "models_dir", Path(self.models_dir).expanduser())
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.chunk_size < 100:
            raise ValueError("chunk_size must be at least 100 characters")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError("chunk_overlap must be >= 0 and smaller than chunk_size")
        if self.fusion not in ("rrf", "convex"):
            raise ValueError(f"fusion must be rrf or convex, not {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError("dense_weight must be between 0 and 1")
        if self.k < 1:
            raise ValueError("k must be at least 1")
        if self.extra_sentences not in ("same-document", "any"):
            raise ValueError(f"extra_sentences must be same-document or any, not {self.extra_sentences!r}")
        for name in ("since", "until"):
            value = (getattr(self, name) or "").strip() or None
            if value is not None:
                try:
                    value = _date.fromisoformat(value[:10]).isoformat()
                except ValueError:
                    raise ValueError(f"{name} must be a date as YYYY-MM-DD, not {getattr(self, name)!r}") from None
            object.__setattr__(self, name, value)
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        if self.faiss not in ("auto", "flat", "hnsw", "ivf"):
            raise ValueError(f"faiss must be auto, flat, hnsw or ivf, not {self.faiss!r}")
        if self.faiss_probe < 0:
            raise ValueError("faiss_probe must be >= 0")
        parse_store(self.store, self.index_dir, root)  # ValueError naming the accepted forms
        if self.dtype == "auto":
            raise ValueError("dtype auto was removed: it chose bfloat16 by the CPU's flags, so the same question "
                             "got another answer on another machine; use float32 (the default) or bfloat16")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be float32 or bfloat16, not {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        object.__setattr__(self, "api_token", (self.api_token or "").strip() or None)

    @property
    def store_spec(self) -> StoreSpec:
        """The parsed store setting (rag.stores)."""
        return parse_store(self.store, self.index_dir, self.project_root)

    @property
    def max_file_bytes(self) -> int:
        """The per-file size limit in bytes (corpus files and uploads alike)."""
        return self.max_file_mb * 2**20

    def replace(self, **changes) -> Settings:
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then RAG_* environment variables, then explicit overrides."""
        values: dict = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f"RAG_{f.name.upper()}")
            if raw is None:
                continue
            kind = str(f.type)
            try:
                if "int" in kind and "float" not in kind:
                    values[f.name] = int(raw)
                elif "float" in kind:
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                number = "a whole number" if "float" not in kind else "a number"
                raise ValueError(f"RAG_{f.name.upper()} must be {number}, not {raw!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def relative(self, path: Path) -> str:
        """A path as shown to users: relative to the project root when inside it."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.project_root).as_posix()
        except ValueError:
            return path.as_posix()
