"""Where sentence vectors (and the passages' BM25) are searched: one small interface, one
file per backend (`faiss.py`, the default, in the index folder; `milvus.py`, Milvus Lite or
a Milvus server or cluster).

The index folder stays the source of truth for documents, passages, sentence offsets and
citations; a store answers two questions about the build it was opened with:

    dense(q_vec, k, since, until)  -> [(sentence index, cosine)], one per passage, best first
    lexical(q_tokens, k, since, until) -> [(passage index, BM25)], best first

`RAG_STORE` (Settings.store) chooses it: `faiss`, `milvus` (Milvus Lite in
index/milvus.db), `milvus:///path/to/file.db` (Milvus Lite in that file) or
`milvus://host:19530` (a Milvus server or cluster; `milvus+https://` for TLS). Query
parameters: `?collection=NAME` (prefix of the collection names, default `rag`),
`?index=FLAT|HNSW|AUTOINDEX` (the vector index, default FLAT: exact, as FAISS flat).
"""

from __future__ import annotations

from rag.stores.base import KINDS, StoreSpec, VectorStore, parse_store, spec_of

__all__ = ["KINDS", "StoreSpec", "VectorStore", "describe", "open_store", "parse_store", "spec_of", "sync"]


def describe(settings, embedder, normalization: str, fmt: int) -> dict:
    """What the manifest records about the store a build goes to (kind, where, collections)."""
    spec = settings.store_spec
    d = spec.to_dict()
    if spec.kind == "milvus":
        from rag.stores.milvus import collection_names, collection_tag

        model = {"id": embedder.model_id, "sha256": embedder.weights_sha256, "dim": embedder.dim}
        chunking = {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap}
        sentences, passages = collection_names(spec, collection_tag(model, normalization, chunking, fmt))
        d["collections"] = {"sentences": sentences, "passages": passages}
    return d


def sync(manifest_store: dict, documents, passages, s_pidx, s_start, s_vecs, report) -> None:
    """Send a build to its store (Milvus: upserts and deletes by document id); FAISS: nothing,
    the build folder is the store."""
    spec = spec_of({"store": manifest_store})
    if spec.kind == "faiss":
        report("store", 0, 0)
        return
    from rag.stores.milvus import sync as milvus_sync

    milvus_sync(spec, manifest_store["collections"], documents, passages, s_pidx, s_start, s_vecs, report)


def open_store(spec: StoreSpec, index) -> VectorStore:
    """The store of a loaded build (rag.index.Index)."""
    if spec.kind == "faiss":
        from rag.stores.faiss import FaissStore

        return FaissStore(index)
    from rag.stores.milvus import MilvusStore

    return MilvusStore.open(spec, index)
