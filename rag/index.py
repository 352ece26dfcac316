"""The index folder: build (incrementally, atomically), save, load and verify.

Layout of `index/`:

    current -> builds/<stamp>      symlink, swapped atomically when a build completes
    builds/<stamp>/manifest.json   model id + weights hash, dims, settings, fingerprints, file hashes
                   documents.jsonl passages.jsonl sentences.npz
                   sentence_vectors.npy dense.faiss lexical/
    calibration.json               abstention threshold written by `rag eval --calibrate`

Only sentences are embedded: the FAISS index holds sentence vectors, and a passage's
dense score is its best sentence's cosine (rag.retrieval.dense_search). The answerer
scores the same vectors, so one embedding pass serves retrieval and answering.
Embeddings are cached by a hash of the exact text embedded, so a rebuild embeds only
new or changed text, and deleted documents simply drop out.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import bm25s
import faiss
import numpy as np

from rag import __version__, stores
from rag.chunking import Passage, chunk
from rag.config import Settings
from rag.corpus import SUFFIXES, Document, Skipped, load_project_corpus
from rag.embedding import Embedder
from rag.models import sha256_file
from rag.progress import OnProgress
from rag.text import NORMALIZATION_VERSION, normalize, sentences, tokens

FORMAT = 2  # 2: FAISS over sentence vectors, no passage vectors
LOCK_FILE = ".build.lock"
log = logging.getLogger(__name__)


class IndexProblem(RuntimeError):
    """The index is missing, damaged or does not fit the settings; the message says what to do."""


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

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("skipped", "path")}
        return d | {"skipped": [s.__dict__ for s in self.skipped], "path": str(self.path)}


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@functools.lru_cache(maxsize=8)
def default_calibration(model_id: str) -> dict | None:
    """The tuning shipped for a model in rag/calibration.json (read once; do not modify)."""
    data = json.loads(resources.files("rag").joinpath("calibration.json").read_text("utf-8"))
    return data.get(model_id)


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
    dense: faiss.Index | None  # None when the store is not FAISS (rag.stores)
    lexical: bm25s.BM25 | None
    df: dict[str, int]
    dup_of: np.ndarray  # index of the first passage with the same normalised text
    calibration: dict = field(default_factory=dict)
    _sent_ptr: np.ndarray | None = None
    _date_masks: dict = field(default_factory=dict)  # (since, until) -> passages in range (rag.retrieval.date_mask)
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

    @property
    def tuning(self) -> dict:
        """Answer tuning for this model: abstention threshold, sentence weights and margin.

        From `rag eval --calibrate` on this index (index/calibration.json), else the
        defaults fitted on the dev sets and shipped with this version in
        rag/calibration.json (they go with this version's scorer), else the copy the
        manifest took when the index was built.
        """
        if self.calibration:
            return self.calibration
        return default_calibration(self.manifest["model"]["id"]) or self.manifest.get("tuning") or {}

    def abstain_threshold(self, settings: Settings | None = None) -> float | None:
        """The abstention threshold in force: the setting when it is set, else this index's tuning."""
        if settings is not None and settings.abstain_threshold is not None:
            return settings.abstain_threshold
        return self.tuning.get("threshold")

    @property
    def sentence_weights(self) -> dict | None:
        return self.tuning.get("sentence_weights")

    @functools.cached_property
    def answerability(self):
        """The answerability model shipped for this model (rag.answerability.Model), or None."""
        from rag.answerability import Model

        spec = self.tuning.get("answerability")
        return Model.from_dict(spec) if spec else None

    @functools.cached_property
    def followup(self):
        """The follow-up model shipped for this model (rag.conversation.FollowUpModel), or None."""
        from rag.conversation import FollowUpModel

        spec = self.tuning.get("followup")
        return FollowUpModel.from_dict(spec) if spec else None

    @functools.cached_property
    def reader(self):
        """The reader's weights shipped for this model (rag.reader.Reader), or None."""
        from rag.reader import Reader

        spec = self.tuning.get("reader")
        return Reader.from_dict(spec) if spec else None

    def is_current(self, settings: Settings, documents: list[Document]) -> bool:
        """Whether this index was built from exactly these documents with these settings
        (sources, metadata and text included: a renamed file or an edited record is a change)."""
        return self.manifest.get("fingerprint") == fingerprint(settings, documents)

    def check_embedder(self, embedder: Embedder) -> None:
        """Raise IndexProblem unless the index was built with this embedder (model, dims, weights)."""
        _check_compatible(self.manifest, None, embedder, self.path.parent.parent)

    # ---------- load ----------
    @classmethod
    def load(cls, index_dir: Path, settings: Settings | None = None, embedder: Embedder | None = None, verify: bool = True) -> Index:
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
        if verify:
            for name, meta in manifest["files"].items():
                f = build / name
                if not f.exists() or f.stat().st_size != meta["size"] or sha256_file(f) != meta["sha256"]:
                    raise IndexProblem(f"the index file {f} is missing or damaged: run `rag index` to rebuild the index")
        try:
            return cls._read(build, manifest, index_dir)
        except IndexProblem:
            raise
        except Exception as e:  # any unreadable piece means a damaged index
            raise IndexProblem(f"the index at {build} cannot be read ({type(e).__name__}: {e}): run `rag index` to rebuild") from e

    @classmethod
    def _read(cls, build: Path, manifest: dict, index_dir: Path) -> Index:
        docs = {}
        with open(build / "documents.jsonl", encoding="utf-8") as f:
            for line in f:
                d = Document(**json.loads(line))
                docs[d.id] = d
        passages = []
        with open(build / "passages.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                text = docs[r["doc_id"]].text[r["start"]:r["end"]]
                passages.append(Passage(r["id"], r["doc_id"], r["start"], r["end"], text))
        s = np.load(build / "sentences.npz")
        sent_keys = json.loads((build / "sentence_keys.json").read_text("utf-8"))
        # --- store (rag.stores): FAISS reads dense.faiss and bm25s; Milvus searches there and the
        # answerer reads the few vectors it scores from a memory map, so none need to fit in memory
        spec = stores.spec_of(manifest)
        local = spec.kind == "faiss"
        lexical = bm25s.BM25.load(str(build / "lexical"), show_progress=False) if local else None
        df = json.loads((build / "lexical" / "df.json").read_text("utf-8"))
        calibration = {}
        cal_file = index_dir / "calibration.json"
        if cal_file.exists():
            try:
                calibration = json.loads(cal_file.read_text("utf-8")).get(manifest["model"]["id"], {})
            except ValueError:
                log.warning("ignoring unreadable %s", cal_file)
        idx = cls(
            path=build, manifest=manifest, documents=docs, passages=passages,
            sent_passage=s["passage"], sent_start=s["start"], sent_end=s["end"], sent_keys=sent_keys,
            sentence_vectors=np.load(build / "sentence_vectors.npy", mmap_mode=None if local else "r"),
            dense=faiss.read_index(str(build / "dense.faiss")) if local else None, lexical=lexical, df=df,
            dup_of=s["dup_of"], calibration=calibration,
        )
        idx.store = stores.open_store(spec, idx)
        return idx

    def save_calibration(self, values: dict) -> None:
        """Store answer tuning (e.g. the abstention threshold) for this index's model; survives rebuilds.

        Keys not given keep the tuning in effect (e.g. the sentence weights the new
        threshold was measured with)."""
        values = {**self.tuning, **values}
        cal_file = self.path.parent.parent / "calibration.json"
        data = json.loads(cal_file.read_text("utf-8")) if cal_file.exists() else {}
        data[self.manifest["model"]["id"]] = values
        tmp = cal_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
        os.replace(tmp, cal_file)
        self.calibration = values


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


# ---------------------------------------------------------------- build
def _previous_cache(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """Sentence vectors of the current build keyed by text hash, when it used the same model.

    Reads only the keys and vectors (not FAISS, BM25 or the documents); anything
    unreadable just means nothing is reused."""
    build = index_dir / "current"
    try:
        manifest = json.loads((build / "manifest.json").read_text("utf-8"))
        _check_compatible(manifest, None, embedder, index_dir)
        s_keys = json.loads((build / "sentence_keys.json").read_text("utf-8"))
        return dict(zip(s_keys, np.load(build / "sentence_vectors.npy"), strict=True))
    except (OSError, ValueError, KeyError, IndexProblem):
        return {}


class _Checkpoint:
    """Vectors embedded by an unfinished build, saved slice by slice so that a killed
    `rag index` resumes where it stopped. Removed once a build completes."""

    def __init__(self, index_dir: Path, embedder: Embedder):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{embedder.model_id}-{embedder.dim}")
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


def fingerprint(settings: Settings, documents: list[Document]) -> str:
    """A hash of everything a build depends on: each document's id, source, metadata and exact
    text, and the settings that change what is built (model, chunking, FAISS type, format).

    Two builds with the same fingerprint are the same index; `Index.is_current` compares it."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "normalization": NORMALIZATION_VERSION, "model": settings.model,
                         "dim": settings.dim, "chunk_size": settings.chunk_size,
                         "chunk_overlap": settings.chunk_overlap, "faiss": settings.faiss}
                        | ({"store": settings.store_spec.name} if settings.store_spec.kind != "faiss" else {}),
                        sort_keys=True).encode())
    for d in sorted(documents, key=lambda d: (d.id, d.source)):
        h.update(json.dumps([d.id, d.source, d.title, d.url, d.date, d.lang, _key(d.text), list(d.pages), d.extractor],
                            ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:32]


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: bool = True, on_progress: OnProgress = _no_progress):
    """Only one process (or thread) builds an index folder at a time: an exclusive fcntl lock
    on `index/.build.lock`. A second builder waits (reporting the stage "waiting"), or with
    wait=False fails at once with IndexProblem."""
    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        f = open(index_dir / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as e:
        raise IndexProblem(f"cannot write the index folder {index_dir}: {e.strerror or e}") from e
    with f:
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
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_index(settings: Settings, embedder: Embedder, documents: list[Document] | None = None,
                skipped: list[Skipped] | None = None, on_progress: OnProgress | None = None,
                wait: bool = True, notes: list[str] | None = None) -> BuildReport:
    """Build the index of settings.corpus_dir (or of `documents`) and swap it in atomically.

    Holds the folder's build lock throughout (see `build_lock`). Every stage is reported
    through `on_progress(stage, done, total)` (rag.progress); nothing is printed."""
    t0 = time.time()
    report = on_progress or _no_progress
    index_dir = Path(settings.index_dir)
    with build_lock(index_dir, wait, report):
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
        s_keys = [_key(t) for t in s_texts]

        s_cache = _previous_cache(index_dir, embedder)
        checkpoint = _Checkpoint(index_dir, embedder)
        resumed = checkpoint.load(embedder.dim)
        if resumed:
            log.info("resuming: %d vectors from an unfinished build", len(resumed))
        s_cache.update(resumed)
        s_vecs, n_s = _embed_missing(embedder, s_keys, s_texts, s_cache, checkpoint, report)

        # collapse passages whose normalised text repeats (same paragraph in two documents)
        first: dict[str, int] = {}
        dup_of = np.array([first.setdefault(" ".join(normalize(p.text).split()), i) for i, p in enumerate(passages)],
                          np.int64)

        builds = index_dir / "builds"
        try:
            builds.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexProblem(f"cannot write the index folder {index_dir}: {e.strerror or e}") from e
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        tmp = builds / f".tmp-{stamp}"
        try:
            _write(tmp, settings, embedder, documents, passages, s_pidx, s_start, s_end, s_keys, s_vecs, dup_of,
                   report)
            # --- store (rag.stores): Milvus gets upserts and deletes by document id; FAISS has nothing to do
            stores.sync(json.loads((tmp / "manifest.json").read_text("utf-8"))["store"], documents, passages,
                        s_pidx, s_start, s_vecs, report)
            final = builds / stamp
            os.replace(tmp, final)
            _swap_current(index_dir, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise IndexProblem(f"could not write the new index in {builds} ({e.strerror or e}); "
                               "the previous index is unchanged") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        checkpoint.clear()
        _prune(builds, keep={final.name, *_previous_build_names(index_dir)})
    return BuildReport(len(documents), len(passages), len(s_keys), n_s, len(s_keys) - n_s, skipped,
                       time.time() - t0, final, notes)


def _write(tmp: Path, settings: Settings, embedder: Embedder, documents, passages, s_pidx, s_start, s_end, s_keys,
           s_vecs, dup_of, report: OnProgress) -> None:
    tmp.mkdir(parents=True)
    report("writing", 0, 3)
    with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
    with open(tmp / "passages.jsonl", "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps({"id": p.id, "doc_id": p.doc_id, "start": p.start, "end": p.end}) + "\n")
    report("writing", 1, 3)
    np.savez(tmp / "sentences.npz", passage=np.array(s_pidx, np.int64), start=np.array(s_start, np.int64),
             end=np.array(s_end, np.int64), dup_of=dup_of)
    (tmp / "sentence_keys.json").write_text(json.dumps(s_keys), "utf-8")
    report("writing", 2, 3)
    np.save(tmp / "sentence_vectors.npy", s_vecs)
    report("writing", 3, 3)

    dim = s_vecs.shape[1]
    if settings.faiss == "hnsw":
        dense = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        dense.hnsw.efConstruction = 80
        dense.hnsw.efSearch = 128
    else:
        dense = faiss.IndexFlatIP(dim)
    step = 10_000
    report("dense", 0, len(s_vecs))
    for start in range(0, len(s_vecs), step):
        dense.add(s_vecs[start:start + step])
        report("dense", min(start + step, len(s_vecs)), len(s_vecs))
    faiss.write_index(dense, str(tmp / "dense.faiss"))

    report("lexical", 0, 2)
    corpus_tokens = [tokens(p.text) for p in passages]
    lexical = bm25s.BM25()
    lexical.index([t or [""] for t in corpus_tokens], show_progress=False)
    report("lexical", 1, 2)
    lexical.save(str(tmp / "lexical"), show_progress=False)
    df = Counter(tok for toks in corpus_tokens for tok in set(toks))
    (tmp / "lexical" / "df.json").write_text(json.dumps({"_n": len(passages), **df}, ensure_ascii=False), "utf-8")
    report("lexical", 2, 2)

    written = sorted(f for f in tmp.rglob("*") if f.is_file())
    files = {}
    for n, f in enumerate(written, start=1):
        with open(f, "rb") as fh:  # flush to disk before the swap makes the build visible
            os.fsync(fh.fileno())
        files[f.relative_to(tmp).as_posix()] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
        report("hashing", n, len(written))
    manifest = {
        "format": FORMAT,
        "package_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": embedder.model_id, "sha256": embedder.weights_sha256, "dim": int(dim), "normalized": True,
                  "dtype": embedder.dtype},
        "normalization": NORMALIZATION_VERSION,
        "chunking": {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap, "splitter": "langchain RecursiveCharacterTextSplitter"},
        "faiss": settings.faiss,
        "store": stores.describe(settings, embedder, NORMALIZATION_VERSION, FORMAT),  # rag.stores
        "lexical": {"library": "bm25s", "version": bm25s.__version__},
        "corpus": {"dir": settings.relative(settings.corpus_dir), "documents": len(documents),
                   "passages": len(passages), "sentences": len(s_keys)},
        "fingerprint": fingerprint(settings, documents),
        "tuning": default_calibration(embedder.model_id) or {},
        "files": files,
    }
    with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2))
        f.flush()
        os.fsync(f.fileno())


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


def _prune(builds: Path, keep: set[str]) -> None:
    """Drop older builds and the leftovers of crashed ones (kept: current and previous, so a
    reader mid-load never loses files). Runs under the build lock: no other build is writing."""
    for d in builds.iterdir():
        if d.name in keep or d.name.startswith(".partial-"):
            continue
        shutil.rmtree(d, ignore_errors=True)
