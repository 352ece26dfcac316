"""The index folder: its layout, loading and verifying the current build, and the queries
over it. Building it is rag.build.

Layout of `index/`:

    current -> builds/<stamp>      symlink, swapped atomically when a build completes
    builds/<stamp>/manifest.json   model id + weights hash, dims, settings, fingerprint, the segments
                                   that make the index, the documents deleted from them, file hashes
    segments/<name>/               one immutable segment: documents.jsonl doc_keys.json passages.jsonl
                                   sentences.npz sentence_keys.json sentence_vectors.npy (float16)
                                   dense.faiss lexical.npz vocab.json
    calibration.json               the threshold override `rag eval --calibrate` writes (rag.tuning)

An index is a base segment plus delta segments: an update that adds or changes a few
documents writes only a new segment with their passages (exact FAISS, raw BM25 counts)
and marks the documents it replaces or deletes as deleted in the new manifest; nothing
already written is rewritten or hashed again. When the deltas grow past a share of the
base (or too many documents are deleted) the next build writes one new base from
everything, reusing every vector (see `_plan`).

Only sentences are embedded: FAISS holds sentence vectors, and a passage's dense score
is its best sentence's cosine (rag.retrieval.dense_search). The answerer scores the
same vectors, so one embedding pass serves retrieval and answering. Embeddings are
cached by a hash of the exact text embedded, so a rebuild embeds only new or changed
text, and deleted documents simply drop out.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from rag import dense as dense_mod
from rag import stores
from rag.chunking import Passage
from rag.config import Settings
from rag.corpus import Document
from rag.embedding import MIN_AGREEMENT, TORCH_AGREEMENT, Embedder
from rag.errors import IndexProblem  # noqa: F401 — raised here, imported from here by callers
from rag.lexical import Lexical, Postings
from rag.models import sha256_file
from rag.text import NORMALIZATION_VERSION, normalize
from rag.tuning import Tuning, shipped

FORMAT = 3  # 3: segments (base + deltas), float16 vectors, raw BM25 counts; 2: one folder per build
SEGMENT_FILES = ("documents.jsonl", "doc_keys.json", "passages.jsonl", "sentences.npz", "sentence_keys.json",
                 "sentence_vectors.npy", "dense.faiss", "lexical.npz", "vocab.json")
log = logging.getLogger(__name__)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass
class Index:
    path: Path
    manifest: dict
    documents: dict[str, Document]
    passages: list[Passage]
    sent_passage: np.ndarray  # passage index of each sentence
    sent_start: np.ndarray
    sent_end: np.ndarray
    sent_keys: list[str]
    sentence_vectors: np.ndarray
    dense: dense_mod.DenseSearch | None  # .search(q, n) -> (scores, ids), .ntotal: like a FAISS index; None when
    lexical: Lexical  # the store is not FAISS (rag.stores); BM25 also gives the answerer its document frequencies
    df: dict[str, int]
    dup_of: np.ndarray  # index of the first passage with the same normalised text
    override: dict = field(default_factory=dict)  # index/calibration.json: a threshold `rag eval --calibrate` chose
    _sent_ptr: np.ndarray | None = None
    _date_masks: dict = field(default_factory=dict)  # (since, until) -> passages in range (rag.retrieval.date_mask)
    _segments: list = field(default_factory=list, repr=False)
    store: stores.VectorStore | None = None  # where dense and lexical search run (rag.stores; opened by load)

    # ---------- queries over the stored data ----------
    def passage_sentences(self, i: int) -> range:
        """Indices of the sentences of passage i."""
        if self._sent_ptr is None:
            self._sent_ptr = np.searchsorted(self.sent_passage, np.arange(len(self.passages) + 1))
        return range(int(self._sent_ptr[i]), int(self._sent_ptr[i + 1]))

    def passage_cosine(self, i: int, q_vec: np.ndarray) -> float:
        """The dense score of passage i: the cosine of its sentence closest to the query."""
        js = self.passage_sentences(i)
        return float((self.sentence_vectors[js.start:js.stop] @ q_vec).max()) if len(js) else -1.0

    def sentence_text(self, j: int) -> str:
        p = self.passages[int(self.sent_passage[j])]
        return self.documents[p.doc_id].text[int(self.sent_start[j]):int(self.sent_end[j])]

    @functools.cached_property
    def tuning(self) -> Tuning:
        """The values fitted for this index's model (rag/calibration.json, for its weights),
        under this index's threshold override, if it has one (rag.tuning)."""
        model = self.manifest["model"]
        return shipped(model["id"], model.get("sha256", "")).with_override(self.override)

    def with_tuning(self, tuning: Tuning) -> Index:
        """This index answering with other fitted values (a measurement without one part, a
        test): the data is shared, nothing is copied or changed."""
        other = dataclasses.replace(self)
        other.__dict__["tuning"] = tuning
        return other

    def abstain_threshold(self, settings: Settings | None = None) -> float | None:
        """The abstention threshold in force: the setting when it is set, else this index's tuning."""
        if settings is not None and settings.abstain_threshold is not None:
            return settings.abstain_threshold
        return self.tuning.threshold

    @functools.cached_property
    def documents_by_lang(self) -> dict[str, frozenset[str]]:
        """Language → the ids of its documents (rag.answer.named_sources; computed once)."""
        by: dict[str, set[str]] = {}
        for d in self.documents.values():
            by.setdefault(d.lang, set()).add(d.id)
        return {lang: frozenset(ids) for lang, ids in by.items()}

    def is_current(self, settings: Settings, documents: list[Document]) -> bool:
        """Whether this index was built from exactly these documents with these settings
        (sources, metadata and text included: a renamed file or an edited record is a change)."""
        return self.manifest.get("fingerprint") == fingerprint(settings, documents)

    def check_embedder(self, embedder: Embedder) -> None:
        """Raise IndexProblem unless the index was built with this embedder (model, dims, weights)."""
        _check_compatible(self.manifest, None, embedder, self.path.parent.parent)

    # ---------- load ----------
    @classmethod
    def load(cls, index_dir: Path, settings: Settings | None = None, embedder: Embedder | None = None,
             verify: bool = True, rehash: bool = False) -> Index:
        """Load the current build. `verify`: every file's size and modification time must match the
        manifest, and a file whose time changed is hashed again; `rehash`: hash every file
        (`rag info --verify`). Segments already in memory (an earlier load) are shared, not re-read."""
        index_dir = Path(index_dir)
        build = index_dir / "current"
        if not build.exists():
            raise IndexProblem(f"no index at {index_dir}: run `rag index` to build it")
        build = build.resolve()
        try:
            manifest = json.loads((build / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise IndexProblem(f"the index manifest {build / 'manifest.json'} is unreadable ({e}): run `rag index` to rebuild") from e
        if manifest.get("format") != FORMAT:
            raise IndexProblem(f"the index at {index_dir} has format {manifest.get('format')}, this version reads {FORMAT}: run `rag index` to rebuild")
        _check_compatible(manifest, settings, embedder, index_dir)
        if verify or rehash:
            for f, meta in index_files(index_dir, manifest).items():
                if not _file_ok(f, meta, rehash):
                    raise IndexProblem(f"the index file {f} is missing or damaged: run `rag index` to rebuild the index")
        try:
            return cls._read(build, manifest, index_dir, settings)
        except IndexProblem:
            raise
        except Exception as e:  # any unreadable piece means a damaged index
            raise IndexProblem(f"the index at {build} cannot be read ({type(e).__name__}: {e}): run `rag index` to rebuild") from e

    @classmethod
    def _read(cls, build: Path, manifest: dict, index_dir: Path, settings: Settings | None) -> Index:
        deleted = {name: set(ids) for name, ids in manifest.get("deleted", {}).items()}
        segs = [_load_segment(index_dir / "segments" / m["name"], m) for m in manifest["segments"]]
        docs: dict[str, Document] = {}
        passages: list[Passage] = []
        p_lives, s_lives = [], []
        sent_passage, sent_start, sent_end, sent_keys, vectors, phash = [], [], [], [], [], []
        for seg in segs:
            dead = deleted.get(seg.name, set())
            p_live = np.array([p.doc_id not in dead for p in seg.passages], bool) if dead else np.ones(len(seg.passages), bool)
            s_live = p_live[seg.s_pidx]
            p_remap = np.cumsum(p_live) - 1 + len(passages)
            docs.update((d.id, d) for d in seg.documents if d.id not in dead)
            passages += [p for p, ok in zip(seg.passages, p_live, strict=True) if ok] if dead else seg.passages
            sent_passage.append(p_remap[seg.s_pidx[s_live]])
            sent_start.append(seg.s_start[s_live])
            sent_end.append(seg.s_end[s_live])
            sent_keys += [k for k, ok in zip(seg.s_keys, s_live, strict=True) if ok] if dead else seg.s_keys
            vectors.append(seg.vectors[s_live] if dead else seg.vectors)
            phash.append(seg.phash[p_live])
            p_lives.append(p_live)
            s_lives.append(s_live)
        sentence_vectors = vectors[0] if len(vectors) == 1 else np.concatenate(vectors)
        _, first, inverse = np.unique(np.concatenate(phash), return_index=True, return_inverse=True)
        lexical = Lexical([seg.postings for seg in segs], [None if lv.all() else lv for lv in p_lives])
        spec = stores.spec_of(manifest)  # rag.stores: FAISS searches the segments; Milvus its collections
        dense = dense_mod.DenseSearch([seg.faiss for seg in segs], s_lives, sentence_vectors,
                                      probe=settings.faiss_probe if settings is not None else 0) \
            if spec.kind == "faiss" else None
        override = {}
        cal_file = index_dir / "calibration.json"
        if cal_file.exists():
            try:
                override = json.loads(cal_file.read_text("utf-8")).get(manifest["model"]["id"], {})
            except ValueError:
                log.warning("ignoring unreadable %s", cal_file)
        index = cls(
            path=build, manifest=manifest, documents=docs, passages=passages,
            sent_passage=np.concatenate(sent_passage), sent_start=np.concatenate(sent_start),
            sent_end=np.concatenate(sent_end), sent_keys=sent_keys, sentence_vectors=sentence_vectors,
            dense=dense, lexical=lexical, df={"_n": lexical.n, **lexical.df},
            dup_of=first[inverse.ravel()].astype(np.int64), override=override,
        )
        index._segments = segs  # keeps them in the segment cache while this index lives
        index.store = stores.open_store(spec, index)
        return index

    def save_override(self, values: dict) -> None:
        """Store this index's threshold override for its model (rag.tuning.OVERRIDES, with where it
        came from); it survives rebuilds and replaces the override stored before."""
        cal_file = self.path.parent.parent / "calibration.json"
        data = json.loads(cal_file.read_text("utf-8")) if cal_file.exists() else {}
        data[self.manifest["model"]["id"]] = values
        tmp = cal_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
        os.replace(tmp, cal_file)
        self.override = values
        self.__dict__.pop("tuning", None)


def built_backend(model: dict) -> tuple[str, bool]:
    """The embedder backend an index was built with (manifests before the backend was recorded
    were built by torch), and whether its vectors are shown to agree with torch float32's."""
    backend = model.get("backend") or f"torch-{model.get('dtype') or 'float32'}"
    default = TORCH_AGREEMENT.get(backend, 0.0)
    return backend, float(model.get("agreement", default)) >= MIN_AGREEMENT


def _check_compatible(manifest: dict, settings: Settings | None, embedder: Embedder | None, index_dir: Path) -> None:
    model = manifest["model"]
    if embedder is not None:
        if model["id"] != embedder.model_id or model["dim"] != embedder.dim:
            raise IndexProblem(
                f"the index at {index_dir} was built with model {model['id']} ({model['dim']} dims), "
                f"not {embedder.model_id} ({embedder.dim} dims): run `rag index` to rebuild it for this model, "
                f"or set the model back to {model['id']}"
            )
        if model["sha256"] != embedder.weights_sha256:
            raise IndexProblem(
                f"the index at {index_dir} was built with other weights for {model['id']}: run `rag index` to rebuild"
            )
        built, agreed = built_backend(model)
        if built != embedder.backend and not (agreed and embedder.agreement >= MIN_AGREEMENT):
            raise IndexProblem(
                f"the index at {index_dir} was built with the {built} embedder, and vectors of {embedder.backend} "
                f"are not shown to agree with them: set RAG_BACKEND/RAG_DTYPE back, or run `rag index` to rebuild"
            )
    elif settings is not None and model["id"] != settings.model:
        raise IndexProblem(
            f"the index at {index_dir} was built with model {model['id']}, the settings ask for {settings.model}: "
            "run `rag index` to rebuild, or change the model setting back"
        )
    if manifest.get("normalization") != NORMALIZATION_VERSION:
        raise IndexProblem(f"the index at {index_dir} uses an older text normalisation: run `rag index` to rebuild")
    if settings is not None:  # --- store (rag.stores): an index is queried through the store it was built for
        built, asked = stores.spec_of(manifest), settings.store_spec
        if built != asked:
            raise IndexProblem(f"the index at {index_dir} was built for the store {built.name}, the settings ask for "
                               f"{asked.name}: run `rag index` to build it for {asked.name}, or set RAG_STORE={built.name}")


# ---------------------------------------------------------------- segments on disk
@dataclass(eq=False)
class _Segment:
    """One segment as read from disk (shared by every Index loaded while it is alive)."""
    name: str
    documents: list[Document]
    passages: list[Passage]
    s_pidx: np.ndarray  # local passage of each sentence
    s_start: np.ndarray
    s_end: np.ndarray
    s_keys: list[str]
    vectors: np.ndarray  # float16
    phash: np.ndarray  # hash of each passage's normalised text (duplicates collapse)
    faiss: faiss.Index
    postings: Postings


_SEGMENTS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _load_segment(folder: Path, meta: dict) -> _Segment:
    key = (str(folder.resolve()), json.dumps(meta["files"], sort_keys=True))
    seg = _SEGMENTS.get(key)
    if seg is not None:
        return seg
    docs = []
    with open(folder / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            docs.append(Document(**json.loads(line)))
    by_id = {d.id: d for d in docs}
    passages = []
    with open(folder / "passages.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            text = by_id[r["doc_id"]].text[r["start"]:r["end"]]
            passages.append(Passage(r["id"], r["doc_id"], r["start"], r["end"], text))
    z = np.load(folder / "sentences.npz")
    seg = _Segment(meta["name"], docs, passages, z["passage"], z["start"], z["end"],
                   json.loads((folder / "sentence_keys.json").read_text("utf-8")),
                   np.load(folder / "sentence_vectors.npy"), z["phash"],
                   faiss.read_index(str(folder / "dense.faiss")), Postings.load(folder))
    if not len(seg.s_keys) == len(seg.vectors) == seg.faiss.ntotal == len(seg.s_pidx):
        raise IndexProblem(f"the index segment {folder} is inconsistent: run `rag index` to rebuild")
    _SEGMENTS[key] = seg
    return seg


def index_files(index_dir: Path, manifest: dict) -> dict[Path, dict]:
    """Every file an index build is made of, with the size, sha256 and time recorded when it was written."""
    out = {}
    for seg in manifest.get("segments", []):
        for name, meta in seg["files"].items():
            out[Path(index_dir) / "segments" / seg["name"] / name] = meta
    return out


def _file_ok(f: Path, meta: dict, rehash: bool) -> bool:
    """Size and time as written, else (or with rehash) the sha256 as written."""
    try:
        st = f.stat()
    except OSError:
        return False
    if st.st_size != meta["size"]:
        return False
    if not rehash and st.st_mtime_ns == meta.get("mtime_ns"):
        return True
    return sha256_file(f) == meta["sha256"]


def _passage_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(" ".join(normalize(text).split()).encode("utf-8")).digest()[:8], "little")


# ---------------------------------------------------------------- what a build depends on
def doc_key(d: Document) -> str:
    """A hash of one document as indexed: id, source, metadata and exact text. A document whose
    key is in the current index is kept as it is; any other is (re)indexed."""
    return _key(json.dumps([d.id, d.source, d.title, d.url, d.date, d.lang, _key(d.text), list(d.pages), d.extractor],
                           ensure_ascii=False))


def _build_settings(settings: Settings) -> dict:
    return ({"format": FORMAT, "normalization": NORMALIZATION_VERSION, "model": settings.model, "dim": settings.dim,
             "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap, "faiss": settings.faiss}
            | ({"store": settings.store_spec.name} if settings.store_spec.kind != "faiss" else {}))


def fingerprint(settings: Settings, documents: list[Document]) -> str:
    """A hash of everything a build depends on: each document's id, source, metadata and exact
    text, and the settings that change what is built (model, chunking, FAISS type, format).

    Two builds with the same fingerprint are the same index; `Index.is_current` compares it."""
    h = hashlib.sha256()
    h.update(json.dumps(_build_settings(settings), sort_keys=True).encode())
    for k in sorted(doc_key(d) for d in documents):
        h.update(k.encode())
    return h.hexdigest()[:32]


def damaged_files(index_dir: Path, manifest: dict, rehash: bool = False) -> list[Path]:
    """The files of a build that are missing or fail their checks: size and time as written,
    else the sha256 as written (`rehash`: the sha256 of every file)."""
    return [f for f, meta in index_files(index_dir, manifest).items() if not _file_ok(f, meta, rehash)]
