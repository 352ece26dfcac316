"""The store setting (rag.stores) and the Milvus store against a real Milvus Lite in tmp_path.

Nothing is mocked: Milvus Lite runs embedded (pymilvus starts it in this process for a
`.db` path) and, for the server path, as a gRPC server on a local port. Where pymilvus or
milvus-lite is missing these tests fail saying so (`pip install -e '.[dev]'` brings them).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.index import Index, IndexProblem
from rag.stores import StoreSpec, parse_store
from tests.conftest import write_tiny_corpus

QUESTIONS = ["پوتین و ترامپ چقدر صحبت کردند؟", "اجتماع كيري وظريف في نيويورك", "Geneva snow airport",
             "how long did the meeting in New York last?", "مدت تماس ترامپ"]


# ---------------------------------------------------------------- parsing RAG_STORE
def test_parse_store_forms(tmp_path):
    assert parse_store("faiss") == StoreSpec("faiss")
    assert parse_store("") == StoreSpec("faiss")
    lite = parse_store("milvus", tmp_path / "index")
    assert lite.kind == "milvus" and lite.lite and lite.uri == str((tmp_path / "index" / "milvus.db").resolve())
    abs_lite = parse_store(f"milvus://{tmp_path}/a/file.db")  # milvus:///abs/path/file.db
    assert abs_lite.uri == str(tmp_path / "a" / "file.db") and abs_lite.lite
    assert abs_lite.name == f"milvus://{tmp_path}/a/file.db"
    rel = parse_store("milvus://data/file.db", project_root=tmp_path)
    assert rel.uri == str(tmp_path / "data" / "file.db")
    server = parse_store("milvus://milvus.example.org:19531?collection=news&index=hnsw")
    assert (server.uri, server.collection, server.index, server.lite) == ("http://milvus.example.org:19531", "news", "HNSW", False)
    assert server.name == "milvus://milvus.example.org:19531?collection=news&index=HNSW"
    assert parse_store("milvus://10.0.0.5").uri == "http://10.0.0.5:19530"  # Milvus's default port
    assert parse_store("milvus+https://in01.cloud.example:443").uri == "https://in01.cloud.example:443"
    assert parse_store(parse_store("milvus+https://h:443?collection=x").name) == parse_store("milvus+https://h:443?collection=x")


@pytest.mark.parametrize("bad, says", [
    ("pinecone", "store must be one of"), ("milvus://host:port", "port"), ("milvus://h:19530?shards=2", "unknown store option"),
    ("milvus://h:19530?collection=1abc", "collection must be"), ("milvus://h:19530?index=IVF_PQ", "index must be one of"),
    ("milvus://host/path", "a Lite file ends in .db"),
])
def test_parse_store_refuses_with_the_accepted_forms(bad, says):
    with pytest.raises(ValueError, match=says):
        parse_store(bad)


def test_settings_store_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STORE", "milvus://127.0.0.1:19530")
    s = Settings.from_env(project_root=tmp_path)
    assert s.store_spec.uri == "http://127.0.0.1:19530"
    with pytest.raises(ValueError, match="store must be one of"):
        Settings(project_root=tmp_path, store="elastic")


# ---------------------------------------------------------------- Milvus Lite, for real
@pytest.fixture(autouse=True)
def _milvus_available():
    """Fail (never skip) with the reason when Milvus cannot run here."""
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as e:
        pytest.fail(f"the Milvus store tests need pymilvus and milvus-lite ({e}): pip install -e '.[dev]'", pytrace=False)


@pytest.fixture
def lite_servers():
    """Stop the in-process Milvus Lite servers a test started (pymilvus keeps one per file until exit)."""
    from milvus_lite.server_manager import server_manager_instance as manager

    before = set(manager._servers)
    yield
    for path in set(manager._servers) - before:
        manager.release_server(path)


def project(root, store: str, corpus: dict[str, str] | None = None) -> Settings:
    if corpus is None:
        write_tiny_corpus(root)
    else:
        (root / "corpus").mkdir(parents=True, exist_ok=True)
        for name, text in corpus.items():
            (root / "corpus" / name).write_text(text, encoding="utf-8")
    return Settings(project_root=root, model="hash-256", abstain_threshold=0.05, store=store)


def cited(engine: Engine, settings: Settings | None = None) -> list:
    out = []
    for q in QUESTIONS:
        a = engine.ask(q, settings=settings)
        out.append((a.abstained, [(c.doc_id, c.source, c.start, c.end, c.text) for c in a.citations],
                    [(h.passage.id, round(h.score, 5), None if h.lexical is None else round(h.lexical, 5)) for h in a.hits]))
    return out


def test_milvus_lite_answers_as_faiss_with_the_same_offsets(tmp_path, lite_servers):
    faiss = Engine(project(tmp_path / "f", "faiss"), HashEmbedder(256))
    faiss.build()
    milvus = Engine(project(tmp_path / "m", f"milvus://{tmp_path}/m.db"), HashEmbedder(256))
    milvus.build()
    assert milvus.index.store.kind == "milvus" and faiss.index.store.kind == "faiss"
    assert milvus.index.manifest["store"]["name"] == f"milvus://{tmp_path}/m.db"
    assert milvus.index.store.count() == len(milvus.index.sent_keys) == faiss.index.store.count()
    got, want = cited(milvus), cited(faiss)
    assert got == want  # citations (document, offsets, text), hit order, fused and BM25 scores
    assert any(c for _, c, _ in got)
    for mode in ("dense", "lexical"):
        assert [h.passage.id for h in milvus.ask(QUESTIONS[1], mode=mode).hits] == \
               [h.passage.id for h in faiss.ask(QUESTIONS[1], mode=mode).hits]
    doc = milvus.index.documents[got[0][1][0][0]]
    assert all(text == milvus.index.documents[d].text[a:b] for _, cs, _ in got for d, _, a, b, text in cs)
    assert doc.text  # offsets index the document text kept in the index folder


DATED = {
    "news.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "jan", "date": "2025-01-10", "title": "Snow", "text": "Geneva had heavy snow in January. The airport closed for three hours."},
        {"id": "jun", "date": "2025-06-14", "title": "Heat", "text": "Geneva had a heat wave in June. The airport stayed open."},
        {"id": "nodate", "title": "Old", "text": "Geneva airport closed once for snow long ago."},
    ]) + "\n",
}


def test_date_filter_goes_to_milvus_and_matches_faiss(tmp_path, lite_servers):
    engines = {}
    for store in ("faiss", f"milvus://{tmp_path}/m.db"):
        e = Engine(project(tmp_path / store[:6], store, DATED), HashEmbedder(256))
        e.build()
        engines[store[:6]] = e
    for since, until, expect in (("2025-01-01", "2025-03-31", {"jan"}), ("2025-06-01", None, {"jun"}),
                                 (None, "2025-12-31", {"jan", "jun"})):
        got = {}
        for name, e in engines.items():
            s = e.settings.replace(since=since, until=until)
            for mode in ("dense", "lexical", "hybrid"):
                got[name, mode] = [h.passage.doc_id for h in e.ask("Geneva airport snow", mode=mode, settings=s).hits]
        for mode in ("dense", "lexical", "hybrid"):
            assert got["faiss", mode] == got["milvus", mode]
            assert set(got["milvus", mode]) <= expect


def rows_by_doc(index: Index) -> dict[str, int]:
    """doc_id → sentence rows Milvus holds for it, read back from the collection."""
    store = index.store
    counts: dict[str, int] = {}
    for r in store.client.query(store.sentences, filter='doc_id != ""', output_fields=["doc_id"], limit=10000):
        counts[r["doc_id"]] = counts.get(r["doc_id"], 0) + 1
    return counts


def test_updates_and_deletes_go_to_milvus_by_document_id(tmp_path, lite_servers):
    records = [{"id": "a", "text": "Geneva had heavy snow on Friday. The airport closed for three hours."},
               {"id": "b", "text": "پوتین و ترامپ شامگاه شنبه تلفنی گفتگو کردند. این تماس حدود ۵۰ دقیقه طول کشید."}]

    def write(recs):
        (tmp_path / "corpus" / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), "utf-8")

    settings = project(tmp_path, f"milvus://{tmp_path}/m.db", {"ar_meeting.txt": "اجتماع كيري وظريف\nالتقى كيري بظريف في نيويورك. واستمر الاجتماع نحو ساعة."})
    write(records)
    engine = Engine(settings, HashEmbedder(256))
    engine.build()
    first = rows_by_doc(engine.index)
    assert set(first) >= {"a", "b"} and len(first) == 3
    assert sum(first.values()) == engine.index.store.count() == len(engine.index.sent_keys)

    # the same corpus again: nothing is sent
    report = engine.build()
    assert report.documents == 3 and rows_by_doc(engine.index) == first

    # record "a" edited under the same id (one more sentence), record "b" removed, "c" added
    write([{"id": "a", "text": records[0]["text"] + " Flights resumed on Saturday."},
           {"id": "c", "text": "The meeting in New York lasted about an hour."}])
    engine.build()
    after = rows_by_doc(engine.index)
    assert "b" not in after and after["a"] == first["a"] + 1 and after["c"] >= 1
    assert sum(after.values()) == engine.index.store.count() == len(engine.index.sent_keys)
    a = engine.ask("When did flights resume in Geneva?", mode="dense")
    assert a.citations[0].doc_id == "a" and a.citations[0].text == "Flights resumed on Saturday."
    assert all(h.passage.doc_id != "b" for h in engine.ask("تماس پوتین و ترامپ", mode="lexical").hits)


def test_a_store_mismatch_is_refused_with_what_to_do(tmp_path, lite_servers):
    settings = project(tmp_path, "faiss")
    Engine(settings, HashEmbedder(256)).build()
    milvus = settings.replace(store=f"milvus://{tmp_path}/m.db")
    with pytest.raises(IndexProblem, match=r"built for the store faiss, the settings ask for milvus://.*m\.db: run `rag index`"):
        Index.load(settings.index_dir, milvus)
    engine = Engine(milvus, HashEmbedder(256))
    with pytest.raises(IndexProblem, match="RAG_STORE=faiss"):
        engine.ask("Geneva snow")
    assert engine.ensure_index() is not None  # `rag serve` / the app rebuild for the store asked for
    assert engine.index.store.kind == "milvus"
    with pytest.raises(IndexProblem, match=r"built for the store milvus://.*, the settings ask for faiss"):
        Index.load(settings.index_dir, settings)
    other = settings.replace(store=f"milvus://{tmp_path}/other.db")
    with pytest.raises(IndexProblem, match="other.db"):
        Index.load(settings.index_dir, other)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_at_the_address_is_a_clear_error(tmp_path):
    port = unused_port()
    settings = project(tmp_path, f"milvus://127.0.0.1:{port}")
    t = time.monotonic()
    with pytest.raises(IndexProblem, match=rf"cannot reach the Milvus server at http://127.0.0.1:{port} \(.*\): start it"):
        Engine(settings, HashEmbedder(256)).build()
    assert time.monotonic() - t < 30
    assert not (settings.index_dir / "current").exists()  # nothing half-built became current


def test_a_milvus_server_gets_the_same_answers(tmp_path, lite_servers):
    """milvus://host:port through gRPC, as with a cluster: here Milvus Lite's own server on a free port."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    server, db, port = start_server_in_thread(str(tmp_path / "server-data"), "127.0.0.1", 0)
    try:
        remote = Engine(project(tmp_path / "r", f"milvus://127.0.0.1:{port}?collection=news"), HashEmbedder(256))
        remote.build()
        assert remote.index.manifest["store"]["collections"]["sentences"].startswith("news_")
        local = Engine(project(tmp_path / "f", "faiss"), HashEmbedder(256))
        local.build()
        assert cited(remote) == cited(local)
        remote.index.store.close()
    finally:
        server.stop(grace=1)
        db.close()


def test_a_lite_file_open_in_another_process_says_so(tmp_path, lite_servers):
    path = tmp_path / "m.db"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from milvus_lite import MilvusLite; "
                               f"db = MilvusLite({str(path)!r}); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(IndexProblem, match="serves one process at a time"):
            Engine(project(tmp_path, f"milvus://{path}"), HashEmbedder(256)).build()
    finally:
        holder.kill()
        holder.wait()


def test_the_cli_with_rag_store(tmp_path, monkeypatch, capsys, lite_servers):
    from rag.cli import main

    write_tiny_corpus(tmp_path)
    for key, value in {"RAG_PROJECT_ROOT": str(tmp_path), "RAG_MODEL": "hash-256", "RAG_ABSTAIN_THRESHOLD": "0.05",
                       "RAG_STORE": "milvus"}.items():
        monkeypatch.setenv(key, value)
    assert main(["index", "--json", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ask", "Geneva snow airport", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["citations"][0]["source"] == "corpus/en_weather.md"
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["store"]["name"] == f"milvus://{tmp_path / 'index' / 'milvus.db'}" and info["vectors"] > 3
    assert (tmp_path / "index" / "milvus.db").is_dir()
    monkeypatch.setenv("RAG_STORE", "faiss")
    assert main(["ask", "Geneva snow airport"]) == 2  # built for Milvus: refused, with what to do
    assert "built for the store milvus://" in capsys.readouterr().err


def test_a_milvus_build_reports_sending_as_one_stage(tmp_path, lite_servers):
    from rag.progress import fraction

    seen = []
    engine = Engine(project(tmp_path, f"milvus://{tmp_path}/m.db"), HashEmbedder(256))
    engine.build(on_progress=lambda *a: seen.append(a))
    store = [(d, t) for s, d, t in seen if s == "store"]
    total = len(engine.index.sent_keys) + len(engine.index.passages)  # every sentence and passage row
    assert store[0] == (0, total) and store[-1] == (total, total) and seen[-1][0] == "store"
    fr = [fraction(*a) for a in seen]
    assert fr == sorted(fr) and fr[-1] == pytest.approx(1.0)
    seen.clear()
    engine.build(on_progress=lambda *a: seen.append(a))  # nothing changed: nothing sent
    assert [(d, t) for s, d, t in seen if s == "store"] == [(0, 0)]
