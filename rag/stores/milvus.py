"""Milvus: sentence vectors and the passages' BM25 in Milvus Lite (a local file) or a Milvus
server or cluster, through pymilvus (`pip install 'rag[milvus]'`).

Two collections per index, named `<prefix>_<tag>_sentences` and `<prefix>_<tag>_passages`,
where the tag hashes what makes vectors and passages comparable (model, weights,
dimensions, normalisation, chunking): another model gets other collections, never a mix.

    sentences: id = "<passage id>:<start>", doc_id, doc_key, date, head, passage (its passage id),
               vector (FLOAT_VECTOR, IP); searched grouped by passage: a passage scores as its
               best sentence, as with FAISS
    passages:  id = passage id, doc_id, doc_key, date, head, text (the normalised tokens,
               rag.text.tokens, joined by spaces), sparse (Milvus's BM25 function of text)

Passages are indexed as their normalised tokens, so Persian/Arabic normalisation and the
Arabic article strip apply in Milvus exactly as in bm25s (its standard analyzer splits them
again on the same `\\w+`); BM25 uses the same k1 = 1.5, b = 0.75.

A build syncs the collections by document: documents whose `doc_key` (a hash of their
text, date and id) changed are deleted by doc_id and upserted again, removed ones deleted
by doc_id, new ones upserted. One row per document and collection is its `head`, written
last: a document without a head (a sync cut short) is written again next time.
The index folder keeps the documents, offsets and citations; search results come back as
ids and are mapped to the sentences and passages of the build that asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

import numpy as np

from rag.errors import IndexProblem
from rag.stores.base import StoreSpec
from rag.text import tokens

log = logging.getLogger(__name__)

BATCH = 512  # rows per upsert
DELETE_BATCH = 200  # doc ids per delete expression
K1, B = 1.5, 0.75  # BM25, as bm25s's defaults (rag/index.py)
TIMEOUT = 10.0  # seconds to reach a server


def _require():
    try:
        import pymilvus
    except ImportError:
        raise IndexProblem("RAG_STORE=milvus… needs pymilvus and milvus-lite: pip install 'rag[milvus]'") from None
    return pymilvus


def collection_names(spec: StoreSpec, tag: str) -> tuple[str, str]:
    return f"{spec.collection}_{tag}_sentences", f"{spec.collection}_{tag}_passages"


def collection_tag(model: dict, normalization: str, chunking: dict, fmt: int) -> str:
    """What makes two builds' rows interchangeable, hashed: model id, weights, dims, normalisation,
    chunking, index format."""
    key = json.dumps([model["id"], model["sha256"], model["dim"], normalization,
                      chunking["chunk_size"], chunking["chunk_overlap"], fmt], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def connect(spec: StoreSpec):
    """A MilvusClient for the spec; IndexProblem saying what to do when it cannot be reached."""
    pymilvus = _require()
    try:
        client = pymilvus.MilvusClient(uri=spec.uri, token=_token(spec), timeout=TIMEOUT)
        client.list_collections()
        return client
    except IndexProblem:
        raise
    except Exception as e:
        if spec.lite:
            raise IndexProblem(
                f"cannot open the Milvus Lite file {spec.uri} ({_reason(e)}). A Lite file serves one process at a "
                "time: stop the other `rag` command or app using it, or run a server on it (`milvus-lite server "
                f"--data-dir {spec.uri} --port 19530`) and set RAG_STORE=milvus://127.0.0.1:19530") from e
        raise IndexProblem(f"cannot reach the Milvus server at {spec.uri} ({_reason(e)}): start it, or check "
                           "RAG_STORE (milvus://host:port) and RAG_MILVUS_TOKEN") from e


def _token(spec: StoreSpec) -> str:
    import os

    return "" if spec.lite else os.environ.get("RAG_MILVUS_TOKEN", "")


def _reason(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return " ".join(str(msg).split())[:300]


def _quote(s: str) -> str:
    """A string literal for a Milvus filter expression."""
    return json.dumps(s, ensure_ascii=False)


def date_filter(since: str | None, until: str | None) -> str:
    """Rows of documents dated within [since, until] (inclusive); undated ones out (as rag.retrieval.date_mask)."""
    parts = ['date != ""']
    if since:
        parts.append(f"date >= {_quote(since)}")
    if until:
        parts.append(f"date <= {_quote(until)}")
    return " and ".join(parts)


def doc_key(doc) -> str:
    return hashlib.sha256(json.dumps([doc.id, doc.date[:10], doc.text], ensure_ascii=False).encode()).hexdigest()[:20]


# ---------------------------------------------------------------- collections
def _create(client, pymilvus, spec: StoreSpec, sentences: str, passages: str, dim: int) -> None:
    DataType, Function, FunctionType = pymilvus.DataType, pymilvus.Function, pymilvus.FunctionType

    def base_schema():
        s = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        s.add_field("doc_id", DataType.VARCHAR, max_length=1024)
        s.add_field("doc_key", DataType.VARCHAR, max_length=32)
        s.add_field("date", DataType.VARCHAR, max_length=16)
        s.add_field("head", DataType.BOOL)
        return s

    existing = set(client.list_collections())
    if sentences not in existing:
        s = base_schema()
        s.add_field("passage", DataType.VARCHAR, max_length=32)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        idx = client.prepare_index_params()
        params = {"M": 32, "efConstruction": 80} if spec.index == "HNSW" else {}
        idx.add_index(field_name="vector", index_type=spec.index, metric_type="IP", params=params)
        client.create_collection(sentences, schema=s, index_params=idx, consistency_level="Strong")
    if passages not in existing:
        s = base_schema()
        s.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                    analyzer_params={"tokenizer": "standard"})
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                output_field_names=["sparse"]))
        idx = client.prepare_index_params()
        idx.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                      params={"bm25_k1": K1, "bm25_b": B})
        client.create_collection(passages, schema=s, index_params=idx, consistency_level="Strong")
    for name in (sentences, passages):
        client.load_collection(name)


class _NoMvccNote(logging.Filter):
    """Milvus Lite has no MVCC timestamp to give a query iterator; pymilvus warns each time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_NoMvccNote())


def _heads(client, name: str) -> dict[str, str]:
    """doc_id → doc_key of every document completely written to a collection."""
    out: dict[str, str] = {}
    it = client.query_iterator(name, filter="head == true", output_fields=["doc_id", "doc_key"], batch_size=1000)
    try:
        while rows := it.next():
            out.update((r["doc_id"], r["doc_key"]) for r in rows)
    finally:
        it.close()
    return out


def _delete_docs(client, name: str, doc_ids: list[str]) -> None:
    for i in range(0, len(doc_ids), DELETE_BATCH):
        part = doc_ids[i:i + DELETE_BATCH]
        client.delete(name, filter=f"doc_id in [{', '.join(_quote(d) for d in part)}]")


def _upsert(client, name: str, rows: Iterable[dict], total: int, done: list[int], report) -> None:
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) == BATCH:
            client.upsert(name, batch)
            done[0] += len(batch)
            report("store", done[0], total)
            batch = []
    if batch:
        client.upsert(name, batch)
        done[0] += len(batch)
        report("store", done[0], total)


def sync(spec: StoreSpec, collections: dict, documents, passages, s_pidx, s_start, s_vecs: np.ndarray,
         report) -> dict:
    """Make the store's collections hold exactly these documents (see the module doc); returns
    what was deleted and upserted per collection."""
    sentences_c, passages_c = collections["sentences"], collections["passages"]
    client = connect(spec)
    pymilvus = _require()
    try:
        _create(client, pymilvus, spec, sentences_c, passages_c, int(s_vecs.shape[1]))
        keys = {d.id: doc_key(d) for d in documents}
        dates = {d.id: d.date[:10] for d in documents}
        by_doc_p: dict[str, list[int]] = {}
        for i, p in enumerate(passages):
            by_doc_p.setdefault(p.doc_id, []).append(i)
        by_doc_s: dict[str, list[int]] = {}
        for j, pi in enumerate(s_pidx):
            by_doc_s.setdefault(passages[pi].doc_id, []).append(j)

        def row(name: str, doc_id: str, i: int, head: bool) -> dict:
            common = {"doc_id": doc_id, "doc_key": keys[doc_id], "date": dates[doc_id], "head": head}
            if name == sentences_c:
                pid = passages[s_pidx[i]].id
                return {"id": f"{pid}:{int(s_start[i])}", **common, "passage": pid, "vector": s_vecs[i].tolist()}
            return {"id": passages[i].id, **common, "text": " ".join(tokens(passages[i].text))}

        plan = []  # (collection, rows per document, documents to delete, documents to write)
        for name, members in ((sentences_c, by_doc_s), (passages_c, by_doc_p)):
            have = _heads(client, name)
            gone = sorted(d for d, k in have.items() if keys.get(d) != k)  # removed, or changed under the same id
            todo = [d for d in keys if have.get(d) != keys[d]]
            plan.append((name, members, gone, todo))
        total = sum(len(members.get(d, ())) for _, members, _, todo in plan for d in todo)
        done = [0]
        report("store", 0, total)
        stats = {}
        for name, members, gone, todo in plan:
            _delete_docs(client, name, gone)
            # every row but the heads first, then the heads: a head means the document is complete
            _upsert(client, name, (row(name, d, i, False) for d in todo for i in members.get(d, ())[1:]), total, done,
                    report)
            _upsert(client, name, (row(name, d, members[d][0], True) for d in todo if members.get(d)), total, done,
                    report)
            client.flush(name)  # sealed: Milvus Lite builds its BM25 statistics once, not per query
            stats[name] = {"deleted": len(gone), "upserted": len(todo)}
        log.info("milvus sync %s: %s", spec.name, stats)
        return stats
    except IndexProblem:
        raise
    except Exception as e:
        raise IndexProblem(f"could not update Milvus at {spec.name} ({_reason(e)}); the previous index is unchanged "
                           "here, run `rag index` again") from e
    finally:
        client.close()


# ---------------------------------------------------------------- queries
class MilvusStore:
    kind = "milvus"

    def __init__(self, spec: StoreSpec, client, sentences: str, passages: str, sent_ids: dict[str, int],
                 passage_ids: dict[str, int]):
        self.spec, self.client = spec, client
        self.sentences, self.passages = sentences, passages
        self._sent = sent_ids  # Milvus id → sentence index of this build
        self._pass = passage_ids  # passage id → passage index
        self._search_params = {"metric_type": "IP", "params": {"ef": 128} if spec.index == "HNSW" else {}}

    @classmethod
    def open(cls, spec: StoreSpec, index) -> MilvusStore:
        names = index.manifest.get("store", {}).get("collections") or {}
        client = connect(spec)
        try:
            have = set(client.list_collections())
            missing = [n for n in (names.get("sentences"), names.get("passages")) if n not in have]
            if missing:
                raise IndexProblem(f"Milvus at {spec.name} has no collection {', '.join(map(str, missing))} for the index "
                                   f"at {index.path.parent.parent}: run `rag index` to rebuild it there")
            for n in (names["sentences"], names["passages"]):
                client.load_collection(n)
        except IndexProblem:
            client.close()
            raise
        except Exception as e:
            client.close()
            raise IndexProblem(f"cannot load the index's collections from Milvus at {spec.name} ({_reason(e)})") from e
        sent_ids = {f"{index.passages[int(p)].id}:{int(s)}": j
                    for j, (p, s) in enumerate(zip(index.sent_passage, index.sent_start, strict=True))}
        passage_ids = {p.id: i for i, p in enumerate(index.passages)}
        return cls(spec, client, names["sentences"], names["passages"], sent_ids, passage_ids)

    def dense(self, q_vec, k, since=None, until=None):
        if k <= 0:
            return []
        res = self.client.search(self.sentences, data=[np.asarray(q_vec, np.float32).tolist()], anns_field="vector",
                                 limit=k, filter=date_filter(since, until) if since or until else "",
                                 search_params=self._search_params, output_fields=[],
                                 group_by_field="passage", group_size=1)
        out = []
        for h in res[0]:
            j = self._sent.get(h["id"])
            if j is not None:  # rows another build wrote (a concurrent rebuild) are not this build's
                out.append((j, float(h["distance"])))
        return sorted(out, key=lambda x: (-x[1], x[0]))  # equal scores (repeated passages) in index order, as FAISS

    def lexical(self, q_tokens, k, since=None, until=None):
        if not q_tokens or k <= 0:
            return []
        res = self.client.search(self.passages, data=[" ".join(q_tokens)], anns_field="sparse", limit=k,
                                 filter=date_filter(since, until) if since or until else "",
                                 search_params={"metric_type": "BM25"}, output_fields=[])
        out = []
        for h in res[0]:
            i = self._pass.get(h["id"])
            # Milvus Lite reports BM25 negated (smaller is better); Milvus multiplies by k1 + 1, which
            # bm25s (Lucene's form) leaves out: divided here, the two give the same scores
            score = abs(float(h["distance"])) / (K1 + 1)
            if i is not None and score > 0:
                out.append((i, score))
        return sorted(out, key=lambda x: (-x[1], x[0]))

    def count(self) -> int:
        rows = self.client.query(self.sentences, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def close(self) -> None:
        self.client.close()
