"""Building the index folder: planning a build (nothing, a delta segment, a new base, a
repair), embedding what is new with checkpoints, writing segments and the manifest, swapping
the build in atomically under the folder's build lock, and pruning what no build uses.

rag.index reads what this writes (its docstring describes the layout).
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
from rag.embedding import Embedder
from rag.errors import IndexProblem
from rag.index import (
    FORMAT,
    SEGMENT_FILES,
    _build_settings,
    _check_compatible,
    _key,
    _passage_hash,
    damaged_files,
    doc_key,
    fingerprint,
)
from rag.lexical import Postings
from rag.models import sha256_file
from rag.progress import OnProgress
from rag.text import NORMALIZATION_VERSION, sentences, tokens

# an update appends a delta segment unless, after it, the deltas would hold more than this
# share of the base's sentences (and more than DELTA_MIN), more than this share of the
# sentences would belong to deleted documents, or there would be more than MAX_SEGMENTS
DELTA_SHARE = 0.25
DELTA_MIN = 20_000
DEAD_SHARE = 0.2
MAX_SEGMENTS = 16
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
