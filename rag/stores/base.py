"""The store interface and the RAG_STORE setting (see rag/stores/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import numpy as np

KINDS = ("faiss", "milvus")
MILVUS_INDEXES = ("FLAT", "HNSW", "AUTOINDEX")


class VectorStore(Protocol):
    kind: str

    def dense(self, q_vec: np.ndarray, k: int, since: str | None = None,
              until: str | None = None) -> list[tuple[int, float]]:
        """The best sentence of each of the (up to) k passages whose best sentence is closest
        to q_vec, with its cosine, best first; with since/until only documents dated in that
        range (Milvus filters; FAISS does not, rag.retrieval scores a date range exactly)."""
        ...

    def lexical(self, q_tokens: list[str], k: int, since: str | None = None,
                until: str | None = None) -> list[tuple[int, float]]:
        """The k passages with the best BM25 score (> 0) for these normalised tokens."""
        ...

    def count(self) -> int:
        """Sentence vectors held for this build."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreSpec:
    """A parsed RAG_STORE: what the manifest records and what queries must match."""
    kind: str  # faiss | milvus
    uri: str = ""  # milvus: a Milvus Lite file (absolute path) or http(s)://host:port
    collection: str = "rag"  # milvus: prefix of the collection names
    index: str = "FLAT"  # milvus: vector index type
    options: dict = field(default_factory=dict, compare=False)

    @property
    def lite(self) -> bool:
        return self.kind == "milvus" and not self.uri.startswith(("http://", "https://"))

    @property
    def name(self) -> str:
        """The store as a user writes it (RAG_STORE), canonical."""
        if self.kind == "faiss":
            return "faiss"
        if self.lite:
            base = f"milvus://{self.uri}"  # uri is absolute: milvus:///abs/file.db
        else:
            scheme, rest = self.uri.split("://", 1)
            base = f"milvus{'+https' if scheme == 'https' else ''}://{rest}"
        params = [f"collection={self.collection}"] if self.collection != "rag" else []
        params += [f"index={self.index}"] if self.index != "FLAT" else []
        return base + ("?" + "&".join(params) if params else "")

    def to_dict(self) -> dict:
        if self.kind == "faiss":
            return {"kind": "faiss"}
        return {"kind": self.kind, "name": self.name, "uri": self.uri, "collection": self.collection,
                "index": self.index}


def parse_store(value: str, index_dir: Path | None = None, project_root: Path | None = None) -> StoreSpec:
    """RAG_STORE → StoreSpec; ValueError with the accepted forms when it is not one of them."""
    value = (value or "faiss").strip()
    forms = ("faiss, milvus, milvus:///path/to/file.db, milvus://host:19530 or milvus+https://host:443 "
             "(options: ?collection=NAME&index=FLAT|HNSW|AUTOINDEX)")
    if value == "faiss":
        return StoreSpec("faiss")
    if value == "milvus":
        if index_dir is None:
            raise ValueError("store 'milvus' needs the index folder (Milvus Lite lives in index/milvus.db)")
        return StoreSpec("milvus", str((Path(index_dir) / "milvus.db").resolve()))
    parts = urlsplit(value)
    if parts.scheme not in ("milvus", "milvus+http", "milvus+https"):
        raise ValueError(f"store must be one of {forms}, not {value!r}")
    opts = dict(parse_qsl(parts.query))
    unknown = set(opts) - {"collection", "index"}
    if unknown:
        raise ValueError(f"unknown store option {', '.join(sorted(unknown))} in {value!r}: use {forms}")
    collection = opts.get("collection", "rag")
    if not collection.replace("_", "a").isalnum() or not collection[0].isalpha():
        raise ValueError(f"collection must be letters, digits and _ starting with a letter, not {collection!r}")
    index = opts.get("index", "FLAT").upper()
    if index not in MILVUS_INDEXES:
        raise ValueError(f"index must be one of {', '.join(MILVUS_INDEXES)}, not {opts['index']!r}")
    location = parts.netloc + parts.path
    if location.endswith(".db"):  # Milvus Lite: milvus:///abs/file.db, or milvus://rel/file.db (project root)
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = Path(project_root or Path.cwd()) / path
        return StoreSpec("milvus", str(path.resolve()), collection, index)
    if not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"store must be one of {forms}, not {value!r} (a Lite file ends in .db; "
                         "a server is host:port)")
    try:
        port = parts.port or 19530
    except ValueError:
        raise ValueError(f"the port in {value!r} is not a number") from None
    scheme = "https" if parts.scheme == "milvus+https" else "http"
    return StoreSpec("milvus", f"{scheme}://{parts.hostname}:{port}", collection, index)


def spec_of(manifest: dict) -> StoreSpec:
    """The store an index was built for (manifests without one: FAISS)."""
    s = manifest.get("store") or {"kind": "faiss"}
    if s["kind"] == "faiss":
        return StoreSpec("faiss")
    return StoreSpec(s["kind"], s["uri"], s.get("collection", "rag"), s.get("index", "FLAT"))
