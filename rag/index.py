"""The index folder: build (incrementally, atomically), save, load and verify.

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

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
import weakref
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from rag import __version__, stores
from rag import dense as dense_mod
from rag.chunking import Passage, chunk
from rag.config import Settings
from rag.corpus import SUFFIXES, Document, Skipped, load_project_corpus
from rag.embedding import MIN_AGREEMENT, TORCH_AGREEMENT, Embedder
from rag.errors import IndexProblem  # noqa: F401 — raised here, imported from here by callers
from rag.lexical import Lexical, Postings
from rag.models import sha256_file
from rag.progress import OnProgress
from rag.text import NORMALIZATION_VERSION, normalize, sentences, tokens
from rag.tuning import Tuning, shipped

FORMAT = 3  # 3: segments (base + deltas), float16 vectors, raw BM25 counts; 2: one folder per build
# an update appends a delta segment unless, after it, the deltas would hold more than this
# share of the base's sentences (and more than DELTA_MIN), more than this share of the
# sentences would belong to deleted documents, or there would be more than MAX_SEGMENTS
DELTA_SHARE = 0.25
DELTA_MIN = 20_000
DEAD_SHARE = 0.2
MAX_SEGMENTS = 16
SEGMENT_FILES = ("documents.jsonl", "doc_keys.json", "passages.jsonl", "sentences.npz", "sentence_keys.json",
                 "sentence_vectors.npy", "dense.faiss", "lexical.npz", "vocab.json")
LOCK_FILE = ".build.lock"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    documents: int
    passages: int
    sentences: int
    embedded_sentences: int
    reused: int
    skipped: list[Skipped]
    seconds: float
    path: Path
    notes: list[str] = field(default_factory=list)  # what the corpus reader did besides reading (fallbacks, boilerplate)
    update: str = "full"  # full: a new base written; delta: a segment appended; unchanged: nothing to do
    removed: int = 0  # documents dropped (deleted, or replaced by a changed version)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("skipped", "path")}
        return d | {"skipped": [s.__dict__ for s in self.skipped], "path": str(self.path)}


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


# ---------------------------------------------------------------- build
def _current_manifest(index_dir: Path) -> dict | None:
    try:
        return json.loads((index_dir / "current" / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _previous_vectors(index_dir: Path, embedder: Embedder, wanted: set[str] | None = None,
                      damaged: Collection[Path] = ()) -> dict[str, np.ndarray]:
    """Sentence vectors of the current build keyed by text hash (only `wanted` keys when given),
    when it used the same model: this format's segments or an older build's one folder, less
    the segments whose keys or vectors are among the `damaged` files.

    Vectors are read through a memory map, so only the rows reused are read; anything
    unreadable just means nothing is reused."""
    build = index_dir / "current"
    manifest = _current_manifest(index_dir)
    if manifest is None:
        return {}
    try:
        _check_compatible(manifest, None, embedder, index_dir)
    except (IndexProblem, KeyError):
        return {}
    folders = ([index_dir / "segments" / s["name"] for s in manifest.get("segments", [])]
               if manifest.get("format") == FORMAT else [build.resolve()])
    cache: dict[str, np.ndarray] = {}
    for folder in folders:
        if {folder / "sentence_keys.json", folder / "sentence_vectors.npy"} & set(damaged):
            continue
        try:
            keys = json.loads((folder / "sentence_keys.json").read_text("utf-8"))
            vecs = np.load(folder / "sentence_vectors.npy", mmap_mode="r")
            if vecs.shape != (len(keys), embedder.dim):
                continue
            rows = [(k, i) for i, k in enumerate(keys) if (wanted is None or k in wanted) and k not in cache]
            if rows:
                got = np.asarray(vecs[[i for _, i in rows]], np.float32)
                cache.update(zip([k for k, _ in rows], got, strict=True))
        except (OSError, ValueError, KeyError):
            continue
    return cache


class _Checkpoint:
    """Vectors embedded by an unfinished build, saved slice by slice so that a killed
    `rag index` resumes where it stopped. Removed once a build completes."""

    def __init__(self, index_dir: Path, embedder: Embedder):
        # per backend too: a killed build's vectors are reused only by the backend that embedded them
        name = f"{embedder.model_id}-{embedder.dim}-{embedder.backend}"
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        self.dir = index_dir / "builds" / f".partial-{safe}"

    def load(self, dim: int) -> dict[str, np.ndarray]:
        cache: dict[str, np.ndarray] = {}
        for f in sorted(self.dir.glob("*.npz")) if self.dir.exists() else []:
            try:
                z = np.load(f)
                if z["vecs"].shape[1:] == (dim,):
                    cache.update(zip(z["keys"].tolist(), z["vecs"], strict=True))
            except Exception:  # a slice cut short by a crash: ignore it, it will be re-embedded
                continue
        return cache

    def save(self, keys: list[str], vecs: np.ndarray) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
            tmp = self.dir / f".{name}.tmp.npz"
            np.savez(tmp, keys=np.array(keys), vecs=vecs)
            os.replace(tmp, self.dir / f"{name}.npz")
        except OSError:
            pass  # a checkpoint is an optimisation; the build goes on without it

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


CHECKPOINT_EVERY = 128  # texts embedded between checkpoints (and progress reports)


def _embed_missing(embedder: Embedder, keys: list[str], texts: list[str], cache: dict[str, np.ndarray],
                   checkpoint: _Checkpoint, on_progress: OnProgress) -> tuple[np.ndarray, int]:
    todo = {}
    for i, k in enumerate(keys):
        if k not in cache and k not in todo:
            todo[k] = i
    # longest first, like sentence-transformers, so batches hold texts of similar length
    items = sorted(todo.items(), key=lambda kv: -len(texts[kv[1]]))
    on_progress("embedding", 0, len(items))
    for start in range(0, len(items), CHECKPOINT_EVERY):
        part = items[start:start + CHECKPOINT_EVERY]
        vecs = embedder.embed_documents([texts[i] for _, i in part])
        for (k, _), v in zip(part, vecs, strict=True):
            cache[k] = v
        checkpoint.save([k for k, _ in part], vecs)
        on_progress("embedding", start + len(part), len(items))
    out = np.stack([cache[k] for k in keys]) if keys else np.zeros((0, embedder.dim), np.float32)
    return out.astype(np.float32), len(todo)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


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


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: bool = True, on_progress: OnProgress = _no_progress):
    """Only one process (or thread) builds an index folder at a time: an exclusive fcntl lock
    on `index/.build.lock`. A second builder waits (reporting the stage "waiting"), or with
    wait=False fails at once with IndexProblem. Yields the process id of the build waited for
    ("" when none was running)."""
    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        f = open(index_dir / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as e:
        raise IndexProblem(f"cannot write the index folder {index_dir}: {e.strerror or e}") from e
    with f:
        holder = ""
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            if not wait:
                raise IndexProblem(f"another build of {index_dir} is running (process {holder}): "
                                   "wait for it to finish, or run `rag index` again without --no-wait") from None
            log.warning("another build of %s is running (process %s): waiting for it to finish …", index_dir, holder)
            on_progress("waiting", 0, 0)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield holder
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class _Chunked:
    """Documents split into passages and sentences, ready to embed and write as one segment."""
    documents: list[Document]
    passages: list[Passage]
    s_pidx: list[int]
    s_start: list[int]
    s_end: list[int]
    s_texts: list[str]
    s_keys: list[str]


def _chunk_all(documents: list[Document], settings: Settings, report: OnProgress) -> _Chunked:
    passages: list[Passage] = []
    s_pidx, s_start, s_end = [], [], []
    for n, doc in enumerate(documents, start=1):
        for p in chunk(doc, settings.chunk_size, settings.chunk_overlap):
            for sp in sentences(doc.text, p.start, p.end):
                s_pidx.append(len(passages))
                s_start.append(sp.start)
                s_end.append(sp.end)
            passages.append(p)
        if n % 200 == 0 or n == len(documents):
            report("chunking", n, len(documents))
    doc_by_id = {d.id: d for d in documents}
    s_texts = [doc_by_id[passages[i].doc_id].text[a:b] for i, a, b in zip(s_pidx, s_start, s_end, strict=True)]
    return _Chunked(documents, passages, s_pidx, s_start, s_end, s_texts, [_key(t) for t in s_texts])


@dataclass
class _Plan:
    update: str  # full | delta | unchanged
    add: list[Document]  # documents to write in the new segment (all of them for a full build)
    keep: list[dict]  # segments of the current build kept (delta)
    deleted: dict[str, list[str]]  # segment name -> ids of its documents no longer in the index (delta)
    removed: int = 0
    why: str = ""
    damaged: list[Path] = field(default_factory=list)  # files of the current build that fail their checks


def damaged_files(index_dir: Path, manifest: dict, rehash: bool = False) -> list[Path]:
    """The files of a build that are missing or fail their checks: size and time as written,
    else the sha256 as written (`rehash`: the sha256 of every file)."""
    return [f for f, meta in index_files(index_dir, manifest).items() if not _file_ok(f, meta, rehash)]


def _plan(index_dir: Path, settings: Settings, embedder: Embedder, documents: list[Document], fp: str,
          rehash: bool = False) -> _Plan:
    """What to write: nothing (same fingerprint), a delta segment with the new and changed
    documents, or a new base of everything when there is no usable current build, a file of
    it is missing or damaged (a repair; `rehash`: every file's sha256 is checked), or the
    deltas and deletions have grown past DELTA_SHARE / DEAD_SHARE / MAX_SEGMENTS."""
    full = functools.partial(_Plan, "full", documents, [], {})
    m = _current_manifest(index_dir)
    if m is None or m.get("format") != FORMAT:
        return full(why="no current index of this format")
    try:
        _check_compatible(m, None, embedder, index_dir)
    except (IndexProblem, KeyError):
        return full(why="the current index was built with another model")
    try:
        damaged = damaged_files(index_dir, m, rehash)
    except (KeyError, TypeError):
        return full(why="the current manifest lists its files in another form")
    if damaged:
        return full(why="repair: " + ", ".join(settings.relative(f) for f in damaged) + " missing or damaged",
                    damaged=damaged)
    if m.get("build_settings") != _build_settings(settings):
        return full(why="build settings changed")
    if settings.store_spec.kind != "faiss" and m.get("fingerprint") != fp:
        return full(why="the store is synced with whole builds")  # rag.stores.sync: upserts and deletes by document
    if m.get("fingerprint") == fp:
        return _Plan("unchanged", [], m["segments"], m.get("deleted", {}))
    new = {doc_key(d): d for d in documents}
    deleted = {name: list(ids) for name, ids in m.get("deleted", {}).items()}
    live: set[str] = set()
    removed = 0
    dead_sentences = 0
    sizes = []
    for seg in m["segments"]:
        try:
            keys = json.loads((index_dir / "segments" / seg["name"] / "doc_keys.json").read_text("utf-8"))
        except (OSError, ValueError):
            return full(why=f"segment {seg['name']} unreadable")
        gone = set(deleted.get(seg["name"], ()))
        for doc_id, key, n_sentences, _ in keys:
            if doc_id in gone:
                dead_sentences += n_sentences
            elif key in new:
                live.add(key)
            else:
                gone.add(doc_id)
                dead_sentences += n_sentences
                removed += 1
        if gone:
            deleted[seg["name"]] = sorted(gone)
        sizes.append(seg["sentences"])
    add = [d for k, d in new.items() if k not in live]
    base, deltas = sizes[0], sum(sizes[1:])
    new_sentences = sum(len(d.text) for d in add) / max(1.0, m.get("chars_per_sentence", 100.0))  # an estimate
    total = base + deltas + new_sentences
    if len(m["segments"]) + 1 > MAX_SEGMENTS:
        return full(why=f"more than {MAX_SEGMENTS} segments")
    if deltas + new_sentences > max(DELTA_MIN, DELTA_SHARE * base):
        return full(why=f"deltas would hold {deltas + new_sentences:.0f} sentences (base {base})")
    if dead_sentences > DEAD_SHARE * total:
        return full(why=f"{dead_sentences} sentences of deleted documents")
    return _Plan("delta", add, m["segments"], deleted, removed)


def build_index(settings: Settings, embedder: Embedder, documents: list[Document] | None = None,
                skipped: list[Skipped] | None = None, on_progress: OnProgress | None = None,
                wait: bool = True, notes: list[str] | None = None, rehash: bool = False) -> BuildReport:
    """Build or update the index of settings.corpus_dir (or of `documents`) and swap it in atomically.

    Only new and changed documents are chunked and embedded, and usually written as a
    delta segment beside the current ones (see `_plan`). A current build with a missing or
    damaged file is repaired: a new base is written from the corpus, reusing every vector
    that can still be read (`rehash`: every file's sha256 is checked first, which also finds
    damage that kept a file's size and time). Holds the folder's build lock throughout (see
    `build_lock`). Every stage is reported through `on_progress(stage, done, total)`
    (rag.progress); nothing is printed."""
    t0 = time.time()
    report = on_progress or _no_progress
    index_dir = Path(settings.index_dir)
    with build_lock(index_dir, wait, report) as waited_for:
        if documents is None:
            loaded = load_project_corpus(settings, report)
            documents, skipped, notes = loaded.documents, loaded.skipped, loaded.notes
        skipped = list(skipped or [])
        notes = list(notes or [])
        for n in notes:
            log.info("%s", n)
        for s in skipped:
            log.warning("skipped %s: %s", s.source, s.reason)
        if not documents:
            raise IndexProblem(f"no readable documents in {settings.corpus_dir}: add {' '.join(SUFFIXES)} files")
        fp = fingerprint(settings, documents)
        plan = _plan(index_dir, settings, embedder, documents, fp, rehash)
        log.info("index update: %s%s", plan.update, f" ({plan.why})" if plan.why else "")
        if plan.damaged:
            notes.append(f"repaired the index: {', '.join(settings.relative(f) for f in plan.damaged)} "
                         "missing or damaged; rebuilt from the corpus")
        if plan.update == "unchanged":
            m = _current_manifest(index_dir) or {}
            for stage in ("chunking", "embedding", "writing", "dense", "lexical", "hashing", "store"):
                report(stage, 0, 0)  # each stage passed, with nothing to do (rag.progress)
            c = m.get("corpus", {})
            if waited_for:
                notes.append(f"the build this one waited for (process {waited_for}) left the index up to date: "
                             "nothing to do")
            return BuildReport(c.get("documents", 0), c.get("passages", 0), c.get("sentences", 0), 0, 0, skipped,
                               time.time() - t0, (index_dir / "current").resolve(), notes, "unchanged", 0)

        new = _chunk_all(plan.add, settings, report)
        wanted = set(new.s_keys)
        checkpoint = _Checkpoint(index_dir, embedder)
        s_cache = checkpoint.load(embedder.dim)
        if s_cache:
            log.info("resuming: %d vectors from an unfinished build", len(s_cache))
        s_cache.update(_previous_vectors(index_dir, embedder, wanted - set(s_cache), plan.damaged))
        s_vecs, n_s = _embed_missing(embedder, new.s_keys, new.s_texts, s_cache, checkpoint, report)
        s_vecs = s_vecs.astype(np.float16).astype(np.float32)  # as stored: FAISS, the answerer and a store agree
        del s_cache

        segments_dir, builds = index_dir / "segments", index_dir / "builds"
        try:
            segments_dir.mkdir(parents=True, exist_ok=True)
            builds.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexProblem(f"cannot write the index folder {index_dir}: {e.strerror or e}") from e
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        tmp_seg, tmp = segments_dir / f".tmp-s{stamp}", builds / f".tmp-{stamp}"
        kind = dense_mod.resolve(settings.faiss, len(new.s_keys)) if plan.update == "full" else "flat"
        try:
            segs = [] if plan.update == "full" else list(plan.keep)
            deleted = {} if plan.update == "full" else plan.deleted
            if new.passages:
                meta = _write_segment(tmp_seg, f"s{stamp}", new, s_vecs, kind, report)
                os.replace(tmp_seg, segments_dir / meta["name"])
                segs.append(meta)
            tmp.mkdir(parents=True)
            manifest = _write_manifest(tmp, settings, embedder, documents, segs, deleted, fp, index_dir)
            # --- store (rag.stores): Milvus gets upserts and deletes by document id; FAISS has nothing to do
            stores.sync(manifest["store"], new.documents, new.passages, new.s_pidx, new.s_start, s_vecs, report)
            final = builds / stamp
            os.replace(tmp, final)
            _swap_current(index_dir, final)
        except OSError as e:
            shutil.rmtree(tmp_seg, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
            raise IndexProblem(f"could not write the new index in {index_dir} ({e.strerror or e}); "
                               "the previous index is unchanged") from e
        except BaseException:
            shutil.rmtree(tmp_seg, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        checkpoint.clear()
        _prune(index_dir, keep={final.name, *_previous_build_names(index_dir)})
    c = manifest["corpus"]
    return BuildReport(c["documents"], c["passages"], c["sentences"], n_s, c["sentences"] - n_s, skipped,
                       time.time() - t0, final, notes, plan.update, plan.removed)


def _write_segment(tmp: Path, name: str, new: _Chunked, s_vecs: np.ndarray, kind: str, report: OnProgress) -> dict:
    tmp.mkdir(parents=True)
    report("writing", 0, 3)
    by_doc = Counter(new.passages[i].doc_id for i in new.s_pidx)
    p_by_doc = Counter(p.doc_id for p in new.passages)
    with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
        for d in new.documents:
            f.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
    (tmp / "doc_keys.json").write_text(json.dumps([[d.id, doc_key(d), by_doc[d.id], p_by_doc[d.id]] for d in new.documents]), "utf-8")
    with open(tmp / "passages.jsonl", "w", encoding="utf-8") as f:
        for p in new.passages:
            f.write(json.dumps({"id": p.id, "doc_id": p.doc_id, "start": p.start, "end": p.end}) + "\n")
    report("writing", 1, 3)
    np.savez(tmp / "sentences.npz", passage=np.array(new.s_pidx, np.int64), start=np.array(new.s_start, np.int64),
             end=np.array(new.s_end, np.int64),
             phash=np.array([_passage_hash(p.text) for p in new.passages], np.uint64))
    (tmp / "sentence_keys.json").write_text(json.dumps(new.s_keys), "utf-8")
    report("writing", 2, 3)
    np.save(tmp / "sentence_vectors.npy", s_vecs.astype(np.float16))
    report("writing", 3, 3)

    report("dense", 0, len(s_vecs))
    index = dense_mod.build(kind, s_vecs, lambda d, t: report("dense", d, t))
    faiss.write_index(index, str(tmp / "dense.faiss"))

    report("lexical", 0, 2)
    postings = Postings.from_tokens([tokens(p.text) for p in new.passages])
    report("lexical", 1, 2)
    postings.save(tmp)
    report("lexical", 2, 2)

    files = {}
    for n, name_ in enumerate(SEGMENT_FILES, start=1):
        f = tmp / name_
        with open(f, "rb") as fh:  # flush to disk before the swap makes the build visible
            os.fsync(fh.fileno())
        st = f.stat()
        files[name_] = {"size": st.st_size, "sha256": sha256_file(f), "mtime_ns": st.st_mtime_ns}
        report("hashing", n, len(SEGMENT_FILES))
    return {"name": name, "faiss": dense_mod.kind_of(index), "documents": len(new.documents),
            "passages": len(new.passages), "sentences": len(new.s_keys), "files": files}


def _write_manifest(tmp: Path, settings: Settings, embedder: Embedder, documents: list[Document], segments: list[dict],
                    deleted: dict[str, list[str]], fp: str, index_dir: Path) -> dict:
    dead_passages = dead_sentences = 0
    for seg in segments:
        gone = set(deleted.get(seg["name"], ()))
        if gone:
            keys = json.loads((index_dir / "segments" / seg["name"] / "doc_keys.json").read_text("utf-8"))
            dead_sentences += sum(n for doc_id, _, n, _ in keys if doc_id in gone)
            dead_passages += sum(n for doc_id, _, _, n in keys if doc_id in gone)
    n_sentences = sum(s["sentences"] for s in segments) - dead_sentences
    n_passages = sum(s["passages"] for s in segments) - dead_passages
    chars = sum(len(d.text) for d in documents)
    manifest = {
        "format": FORMAT,
        "package_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": embedder.model_id, "sha256": embedder.weights_sha256, "dim": int(embedder.dim),
                  "normalized": True, "dtype": embedder.dtype, "backend": embedder.backend,
                  "agreement": embedder.agreement},
        "normalization": NORMALIZATION_VERSION,
        "chunking": {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap, "splitter": "langchain RecursiveCharacterTextSplitter"},
        "faiss": settings.faiss,
        "store": stores.describe(settings, embedder, NORMALIZATION_VERSION, FORMAT),  # rag.stores
        "lexical": {"scoring": "BM25 (lucene idf, k1 1.5, b .75) over raw counts, rag.lexical"},
        "vectors": "float16",
        "corpus": {"dir": settings.relative(settings.corpus_dir), "documents": len(documents),
                   "passages": n_passages, "sentences": n_sentences},
        "chars_per_sentence": chars / max(1, n_sentences),
        "fingerprint": fp,
        "build_settings": _build_settings(settings),
        "segments": segments,
        "deleted": {k: v for k, v in deleted.items() if v},
    }
    with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2))
        f.flush()
        os.fsync(f.fileno())
    return manifest


def _swap_current(index_dir: Path, final: Path) -> None:
    link = index_dir / "current"
    prev = link.resolve().name if link.exists() else None
    tmp_link = index_dir / f".current-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(Path("builds") / final.name)
    os.replace(tmp_link, link)  # atomic on POSIX
    if prev and prev != final.name:
        (index_dir / "previous").unlink(missing_ok=True)
        (index_dir / "previous").symlink_to(Path("builds") / prev)


def _previous_build_names(index_dir: Path) -> list[str]:
    prev = index_dir / "previous"
    return [prev.resolve().name] if prev.is_symlink() else []


def _prune(index_dir: Path, keep: set[str]) -> None:
    """Drop older builds, the segments no kept build uses, and the leftovers of crashed builds
    (kept: current and previous, so a reader mid-load never loses files). Runs under the
    build lock: no other build is writing."""
    builds = index_dir / "builds"
    used: set[str] = set()
    for d in builds.iterdir():
        if d.name in keep or d.name.startswith(".partial-"):
            try:
                used |= {s["name"] for s in json.loads((d / "manifest.json").read_text("utf-8")).get("segments", [])}
            except (OSError, ValueError):
                pass
            continue
        shutil.rmtree(d, ignore_errors=True)
    segments = index_dir / "segments"
    for d in segments.iterdir() if segments.exists() else []:
        if d.name not in used:
            shutil.rmtree(d, ignore_errors=True)
