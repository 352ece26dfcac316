"""What a hostile (or unlucky) user can put in the corpus, the index folder or a question:
links out of the corpus, a pickle in the index, damaged index files, undecodable lines
and bytes. Each case is read, reported or repaired; none is followed, run or fatal."""

import json
import os
import pickle
import subprocess
import sys

import pytest

from rag import corpus as corpus_mod
from rag.answer import QuestionError, check_question
from rag.build import build_index
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import SEGMENT_FILES, Index, IndexProblem
from tests.conftest import write_tiny_corpus

SECRET = "root:x:0:0:root:/root:/bin/bash — a line of a file outside the corpus"


def _outside(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "passwd.txt").write_text(SECRET, "utf-8")
    return outside


# ---------------------------------------------------------------- 1. links out of the corpus
def test_a_link_out_of_the_corpus_is_skipped_and_named(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "project")
    outside = _outside(tmp_path)
    (corpus / "passwd_link.txt").symlink_to(outside / "passwd.txt")
    (corpus / "linked_folder").symlink_to(outside, target_is_directory=True)
    load = corpus_mod.load_corpus(corpus, tmp_path / "project")
    assert not any("root:x:0:0" in d.text for d in load.documents)
    reasons = {s.source: s.reason for s in load.skipped}
    assert "points outside the corpus" in reasons["corpus/passwd_link.txt"]
    assert "points outside the corpus" in reasons["corpus/linked_folder/"]
    assert len(load.documents) == 3  # the rest is read


def test_a_link_inside_the_corpus_is_read_under_its_own_name(tmp_path):
    corpus = write_tiny_corpus(tmp_path)
    (corpus / "sub").mkdir()
    (corpus / "sub" / "note.txt").write_text("A note on the harbour cranes of Aden.", "utf-8")
    (corpus / "alias.txt").symlink_to(corpus / "sub" / "note.txt")
    load = corpus_mod.load_corpus(corpus, tmp_path)
    sources = {d.source for d in load.documents}
    assert "corpus/alias.txt" in sources  # the link's name, not its target's
    assert {s.reason for s in load.skipped} == {"duplicate of corpus/alias.txt"}


def test_rag_ask_does_not_quote_a_file_outside_the_corpus(tmp_path):
    project = tmp_path / "project"
    corpus = write_tiny_corpus(project)
    (corpus / "passwd_link.txt").symlink_to(_outside(tmp_path) / "passwd.txt")
    env = dict(os.environ, RAG_PROJECT_ROOT=str(project), RAG_MODEL="hash-256", RAG_ABSTAIN_THRESHOLD="0.05")
    built = subprocess.run([sys.executable, "-m", "rag.cli", "index", "--quiet"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert "passwd_link.txt (points outside the corpus" in built.stdout
    asked = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "root:x:0:0", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert asked.returncode == 0, asked.stderr
    assert "root:x" not in json.dumps(json.loads(asked.stdout)["citations"])


# ---------------------------------------------------------------- 2. nothing is unpickled
class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a crafted pickle does: call anything on load
        return (open, (self.marker, "w"))


def test_a_pickle_in_the_index_folder_is_never_loaded(tiny_project):
    s = tiny_project
    s.index_dir.mkdir(parents=True, exist_ok=True)
    marker = s.project_root / "pwned"
    for name in (corpus_mod.OLD_READ_CACHE, corpus_mod.READ_CACHE):  # the old name, and a pickle under the new one
        (s.index_dir / name).write_bytes(pickle.dumps({"version": 1, "entries": _Boom(str(marker))}))
    load = corpus_mod.load_project_corpus(s)
    assert not marker.exists()
    assert len(load.documents) == 3
    assert not (s.index_dir / corpus_mod.OLD_READ_CACHE).exists()  # deleted unread
    data = json.loads((s.index_dir / corpus_mod.READ_CACHE).read_text("utf-8"))  # rewritten as data
    assert data["version"] == corpus_mod.READ_CACHE_VERSION and len(data["entries"]) == 3


@pytest.mark.parametrize("cache", ['{"version": 2, "entries": {"corpus/a.txt": [[1, 2, 3], [{"id": 1}], []]}}',
                                   '{"version": 2, "entries": []}', '[]', '{"version": 1}'])
def test_a_foreign_or_damaged_cache_is_ignored_and_rebuilt(tiny_project, cache):
    s = tiny_project
    s.index_dir.mkdir(parents=True, exist_ok=True)
    (s.index_dir / corpus_mod.READ_CACHE).write_text(cache, "utf-8")
    assert corpus_mod.ReadCache(s.index_dir / corpus_mod.READ_CACHE).entries == {}
    assert len(corpus_mod.load_project_corpus(s).documents) == 3
    assert len(corpus_mod.ReadCache(s.index_dir / corpus_mod.READ_CACHE).entries) == 3


# ---------------------------------------------------------------- 3. `rag index` repairs
def _segment_file(s, name):
    m = json.loads((s.index_dir / "current" / "manifest.json").read_text("utf-8"))
    return s.index_dir / "segments" / m["segments"][-1]["name"] / name


@pytest.mark.parametrize("name", SEGMENT_FILES)
def test_a_truncated_index_file_is_repaired_by_the_next_build(tiny_engine, name):
    s = tiny_engine.settings
    before = tiny_engine.ask("Geneva snow airport")
    f = _segment_file(s, name)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(IndexProblem, match="missing or damaged"):
        Index.load(s.index_dir, s)
    engine = Engine(s, HashEmbedder(256))
    report = engine.build()
    assert report.update == "full"
    assert any("repaired the index" in n and name in n for n in report.notes)
    if name not in ("sentence_vectors.npy", "sentence_keys.json"):
        assert report.embedded_sentences == 0  # every vector reused
    again = Engine(s, HashEmbedder(256)).ask("Geneva snow airport")
    assert again.text == before.text and again.citations == before.citations


def test_damage_that_keeps_size_and_time_is_repaired_with_verify(tiny_engine):
    s = tiny_engine.settings
    f = _segment_file(s, "sentence_vectors.npy")
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.seek(st.st_size // 2)
        fh.write(b"\0" * 64)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert Engine(s, HashEmbedder(256)).build().update == "unchanged"  # size and time cannot see it
    report = Engine(s, HashEmbedder(256)).build(rehash=True)
    assert report.update == "full" and any("sentence_vectors.npy" in n for n in report.notes)
    assert report.embedded_sentences > 0  # the damaged vectors were not reused
    Index.load(s.index_dir, s, rehash=True)  # every file verifies again


def test_rag_index_repairs_a_damaged_index_from_the_command_line(tiny_engine):
    s = tiny_engine.settings
    f = _segment_file(s, "dense.faiss")
    f.write_bytes(b"")
    env = dict(os.environ, RAG_PROJECT_ROOT=str(s.project_root), RAG_MODEL="hash-256", RAG_ABSTAIN_THRESHOLD="0.05")
    done = subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "note: repaired the index" in done.stdout and "dense.faiss" in done.stdout
    info = subprocess.run([sys.executable, "-m", "rag.cli", "info", "--verify"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0, info.stderr


# ---------------------------------------------------------------- 4. a bad .jsonl line
def test_a_jsonl_line_that_cannot_be_encoded_is_skipped_with_its_line(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [json.dumps({"text": "The port of Aden reopened on Monday.", "date": "2024-03-04"}),
             '{"text": "A lone surrogate \\ud800 in the text."}',
             json.dumps({"text": "Geneva had snow on Friday.", "date": "not-a-date"}),
             json.dumps({"text": "Kerry met Zarif in New York."})]
    (corpus / "feed.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    load = corpus_mod.load_corpus(corpus, tmp_path)
    assert sorted(d.source for d in load.documents) == ["corpus/feed.jsonl#1", "corpus/feed.jsonl#3",
                                                        "corpus/feed.jsonl#4"]
    reasons = {s.source: s.reason for s in load.skipped}
    assert "not valid Unicode" in reasons["corpus/feed.jsonl#2"] and "\\ud800" in reasons["corpus/feed.jsonl#2"]
    assert "'not-a-date' is not a date" in reasons["corpus/feed.jsonl#3 date"]
    assert next(d for d in load.documents if d.source.endswith("#3")).date == ""


def test_a_jsonl_line_that_is_not_utf8_is_skipped_not_the_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = [json.dumps({"text": f"Article {i} on the port of Aden and its cranes."}).encode() for i in range(3)]
    (corpus / "feed.jsonl").write_bytes(b"\n".join([good[0], b'{"text": "broken \xff\xfe bytes"}', *good[1:]]))
    load = corpus_mod.load_corpus(corpus, tmp_path)
    assert sorted(d.source for d in load.documents) == ["corpus/feed.jsonl#1", "corpus/feed.jsonl#3",
                                                        "corpus/feed.jsonl#4"]
    assert [(s.source, s.reason) for s in load.skipped] == [("corpus/feed.jsonl#2",
                                                             "bytes that are not UTF-8 (b'\\xff\\xfe')")]


def test_a_jsonl_with_a_bad_line_still_builds(tiny_project):
    (tiny_project.corpus_dir / "feed.jsonl").write_text(
        '{"text": "bad \\udfff"}\n' + json.dumps({"text": "The port of Aden reopened on Monday."}) + "\n", "utf-8")
    report = build_index(tiny_project, HashEmbedder(256))
    assert report.documents == 4
    assert [s.source for s in report.skipped] == ["corpus/feed.jsonl#1"]


# ---------------------------------------------------------------- 5. questions that are not text
@pytest.mark.parametrize("question", ["\udcff\udcfe question \udcc3", "a lone \ud800 surrogate"])
def test_a_question_that_is_not_text_is_one_clear_error(question):
    with pytest.raises(QuestionError, match="not valid text"):
        check_question(question)


def test_rag_ask_with_bytes_that_are_not_utf8(tiny_engine):
    s = tiny_engine.settings
    env = dict(os.environ, RAG_PROJECT_ROOT=str(s.project_root), RAG_MODEL="hash-256", RAG_ABSTAIN_THRESHOLD="0.05")
    rag = [sys.executable, "-m", "rag.cli", "ask"]
    one = subprocess.run(rag + [b"\xff\xfe question \xc3"], env=env, capture_output=True, timeout=120)
    assert one.returncode == 2
    assert one.stderr.decode().startswith("error: the question is not valid text") and b"Traceback" not in one.stderr
    lines = b"Geneva snow airport\n\xff\xfe question \xc3\n\xd8\xaa\xd9\x85\xd8\xa7\xd8\xb3 \xd9\xbe\xd9\x88\xd8\xaa\xdb\x8c\xd9\x86\n"
    many = subprocess.run(rag + ["-", "--json"], env=env, input=lines, capture_output=True, timeout=120)
    assert many.returncode == 2 and b"Traceback" not in many.stderr
    out = [json.loads(x) for x in many.stdout.decode("utf-8").splitlines()]
    assert [("error" in x) for x in out] == [False, True, False]  # the lines after the bad one are answered
    assert out[1]["question"] == "\ufffd\ufffd question \ufffd"
    assert out[2]["citations"][0]["source"] == "corpus/fa_call.txt"


# ---------------------------------------------------------------- 7. what is skipped is said
def test_hidden_folders_and_files_are_reported_not_read(tmp_path):
    corpus = write_tiny_corpus(tmp_path)
    (corpus / "..sub").mkdir()
    (corpus / "..sub" / "a.txt").write_text("Hidden away: the port of Aden.", "utf-8")
    (corpus / ".notes.txt").write_text("A hidden note.", "utf-8")
    load = corpus_mod.load_corpus(corpus, tmp_path)
    assert len(load.documents) == 3
    reasons = {s.source: s.reason for s in load.skipped}
    assert reasons["corpus/..sub/"].startswith("a hidden folder")
    assert reasons["corpus/.notes.txt"].startswith("a hidden file")
    assert "corpus/..sub/a.txt" not in reasons  # the folder is reported once, not entered


def test_a_builder_that_waited_does_not_report_the_other_builds_work(tiny_engine):
    import threading

    s = tiny_engine.settings
    (s.corpus_dir / "new.txt").write_text("The cranes of Aden were sold on Tuesday.", "utf-8")
    a_embeds, b_waits = threading.Event(), threading.Event()
    reports = {}

    def a_progress(stage, done, total):  # the first build holds the lock until the second one waits for it
        if stage == "embedding":
            a_embeds.set()
            assert b_waits.wait(30)

    def b_progress(stage, done, total):
        if stage == "waiting":
            b_waits.set()

    def run(name, progress):
        reports[name] = build_index(s, HashEmbedder(256), on_progress=progress)

    a = threading.Thread(target=run, args=("a", a_progress))
    a.start()
    assert a_embeds.wait(30)
    b = threading.Thread(target=run, args=("b", b_progress))
    b.start()
    a.join(60)
    b.join(60)
    assert reports["a"].update == "delta" and reports["a"].embedded_sentences > 0
    waited = reports["b"]
    assert waited.update == "unchanged" and waited.embedded_sentences == 0 and waited.reused == 0
    assert any(f"waited for (process {os.getpid()})" in n for n in waited.notes)


# ---------------------------------------------------------------- 6. the exit waits for the warm-up
@pytest.mark.model
def test_rag_ask_returns_only_once_the_verifier_warm_up_is_done(seed_project, monkeypatch, capsys):
    """A process that ended while the verifier's warm-up thread was inside torch or OpenVINO
    crashed in their teardown (status 139) after printing its answer (eval/bench_exit.py)."""
    import threading

    from rag.cli import main

    monkeypatch.setenv("RAG_PROJECT_ROOT", str(seed_project.project_root))
    assert main(["ask", "thanks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["abstained"]
    assert not [t.name for t in threading.enumerate() if "warm" in t.name and t.is_alive()]
