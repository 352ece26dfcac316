"""The HTTP API (rag/api.py): most tests through FastAPI's TestClient over the tiny corpus
and the hash embedder; the official `openai` client and a bounded load test against the
real server (`rag api` in a subprocess, eval/bench_api.py starts it); one end-to-end case
with the real model."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.cli import is_loopback, main
from rag.embedding import HashEmbedder
from rag.engine import Engine
from tests.conftest import TINY, write_tiny_corpus

ROOT = Path(__file__).resolve().parent.parent
GENEVA = "How long was the airport closed in Geneva?"
ZURICH = ("zurich.txt", b"Zurich lake news\nThe Zurich harbour master counted 412 sailing boats on Sunday.\n")


def bench_api():
    """eval/bench_api.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_api", ROOT / "eval" / "bench_api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_api", module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules["bench_api"])
    return sys.modules["bench_api"]


@pytest.fixture
def client(tiny_engine) -> TestClient:
    return TestClient(create_app(engine=tiny_engine), raise_server_exceptions=False)


def one_error(r, status: int) -> str:
    """The response is `status` with one message in OpenAI's error shape, and no traceback."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]["message"]


# ---------------------------------------------------------------- answers
def test_ask_is_the_json_of_rag_ask(client, tiny_engine):
    r = client.post("/v1/ask", json={"question": GENEVA})
    assert r.status_code == 200
    got = r.json()
    want = tiny_engine.ask(GENEVA).to_dict(tiny_engine.index)
    assert set(got) == set(want) | {"reading", "searched"}
    for key in ("question", "answer", "abstained", "citations", "passages", "evidence", "threshold", "lang"):
        assert got[key] == want[key], key
    assert got["reading"] == "alone" and got["searched"] == GENEVA
    assert got["answer"] == "The airport closed for three hours. [1]"
    c = got["citations"][0]
    assert c["source"] == "corpus/en_weather.md"
    assert TINY["en_weather.md"][c["start"]:c["end"]] == c["text"] == "The airport closed for three hours."
    assert got["timings_ms"]["total"] > 0


def test_ask_options_and_a_follow_up(client):
    r = client.post("/v1/ask", json={"question": GENEVA, "k": 1, "mode": "lexical"})
    assert r.status_code == 200 and len(r.json()["passages"]) == 1 and r.json()["mode"] == "lexical"
    # the undated tiny corpus has nothing in a date range
    assert client.post("/v1/ask", json={"question": GENEVA, "since": "2020-01-01"}).json()["abstained"] is True
    r = client.post("/v1/ask", json={"question": "چقدر طول کشید؟", "previous": ["تماس پوتین و ترامپ"]})
    got = r.json()
    assert r.status_code == 200 and got["reading"] in ("alone", "in-context")
    if got["reading"] == "in-context":
        assert got["searched"] == "تماس پوتین و ترامپ چقدر طول کشید؟"
        assert got["citations"][0]["source"] == "corpus/fa_call.txt"


def test_chat_completion_openai_shape(client):
    r = client.post("/v1/chat/completions", json={
        "model": "anything", "temperature": 0.2, "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": GENEVA}]}]})
    assert r.status_code == 200
    got = r.json()
    assert got["object"] == "chat.completion" and got["id"].startswith("chatcmpl-") and got["model"] == "rag"
    (choice,) = got["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == ("The airport closed for three hours. [1]\n\n"
                                            "[1] Geneva weather — corpus/en_weather.md [50:85]")
    assert [c["source"] for c in got["citations"]] == ["corpus/en_weather.md"] and got["abstained"] is False


def test_chat_stream_is_server_sent_events(client):
    ask = {"messages": [{"role": "user", "content": GENEVA}]}
    whole = client.post("/v1/chat/completions", json=ask).json()
    with client.stream("POST", "/v1/chat/completions", json=ask | {"stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["citations"] == whole["citations"]


def test_models_health_info(client):
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["rag"]
    assert client.get("/v1/health").json()["status"] == "ok"
    info = client.get("/v1/info").json()
    assert info["model"] == "hash-256" and info["corpus"]["documents"] == 3 and ".pdf" in info["uploads"]["types"]


def test_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    assert "/v1/chat/completions" in client.get("/openapi.json").json()["paths"]


# ---------------------------------------------------------------- documents
def test_document_and_cited_span(client):
    c = client.post("/v1/ask", json={"question": GENEVA}).json()["citations"][0]
    doc = client.get(f"/v1/documents/{c['doc_id']}").json()
    assert doc["text"] == TINY["en_weather.md"] and doc["source"] == "corpus/en_weather.md"
    span = client.get(f"/v1/documents/{c['doc_id']}", params={"start": c["start"], "end": c["end"], "context": 10})
    got = span.json()
    assert got["text"] == c["text"] and got["before"] == TINY["en_weather.md"][c["start"] - 10:c["start"]]
    assert got["after"] == ""  # the sentence ends the document
    assert "start and end must be given together" in one_error(
        client.get(f"/v1/documents/{c['doc_id']}", params={"start": 5}), 400)
    one_error(client.get(f"/v1/documents/{c['doc_id']}", params={"start": 5, "end": 10_000}), 400)


@pytest.mark.parametrize("doc_id", ["..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2e%2e", "..", "nope",
                                    "0123456789abcdef", "x" * 5000])
def test_document_ids_never_reach_the_file_system(client, doc_id):
    r = client.get(f"/v1/documents/{doc_id}")
    assert one_error(r, 404).startswith(("no document", "not found: GET /"))
    assert "root:" not in r.text


# ---------------------------------------------------------------- uploads
def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_upload_is_indexed_in_the_background(client, tiny_engine):
    r = client.post("/v1/documents", files={"file": ZURICH})
    assert r.status_code == 202, r.text
    got = r.json()
    assert got["new"] is True and got["source"] == "corpus/zurich.txt" and got["indexing"] in ("started", "queued")
    doc = got["documents"][0]["id"]
    wait_until(lambda: client.get(f"/v1/documents/{doc}").status_code == 200)
    answer = client.post("/v1/ask", json={"question": "How many sailing boats did the Zurich harbour master count?"})
    assert answer.json()["citations"][0]["source"] == "corpus/zurich.txt"
    again = client.post("/v1/documents", files={"file": ZURICH}).json()
    assert again["new"] is False and again["indexing"] == "not needed"
    info = client.get("/v1/info").json()
    assert info["build"]["error"] is None and info["build"]["report"]["documents"] == 4


@pytest.mark.parametrize("name", ["../../evil.txt", "/etc/evil.txt", "..\\..\\evil.txt", "sub/../../evil.txt",
                                  "\u202eevil.txt", ".evil.txt"])
def test_upload_names_cannot_leave_the_corpus(client, tiny_engine, name):
    root = tiny_engine.settings.project_root
    before = {p for p in root.parent.rglob("*") if "index" not in p.parts}
    r = client.post("/v1/documents", files={"file": (name, b"Oslo news\nOslo had a quiet week of rain.\n")})
    assert r.status_code == 202, r.text
    path = (root / r.json()["source"]).resolve()
    assert path.parent == tiny_engine.settings.corpus_dir.resolve() and path.name.endswith("evil.txt")
    assert not path.name.startswith(".")
    added = {p for p in root.parent.rglob("*") if "index" not in p.parts} - before
    assert added == {path}


@pytest.mark.parametrize("name, data, status, says", [
    ("tool.exe", b"MZ binary", 415, ".exe files are not supported"),
    ("notes", b"text", 415, "needs a file type"),
    ("empty.txt", b"  \n", 400, "is empty"),
    ("bad.pdf", b"not a pdf at all", 400, "cannot be read"),
    ("big.txt", b"a" * (2**20 + 1), 413, "files up to 1 MiB"),
])
def test_upload_limits(tiny_engine, name, data, status, says):
    engine = Engine(tiny_engine.settings.replace(max_file_mb=1), tiny_engine.embedder)
    client = TestClient(create_app(engine=engine))
    message = one_error(client.post("/v1/documents", files={"file": (name, data)}), status)
    assert says in message
    assert sorted(p.name for p in engine.settings.corpus_dir.iterdir()) == sorted(TINY)


def test_upload_body_over_the_limit_is_refused_before_it_is_read(tiny_engine):
    engine = Engine(tiny_engine.settings.replace(max_file_mb=1), tiny_engine.embedder)
    client = TestClient(create_app(engine=engine))
    message = one_error(client.post("/v1/documents", files={"file": ("big.txt", b"a" * (2 * 2**20))}), 413)
    assert "over 1 MiB" in message
    assert "file: Field required" == one_error(client.post("/v1/documents", data={"x": "1"}), 400)


def test_a_question_during_a_re_index_is_answered_from_the_current_index(tiny_project):
    release, embedding = threading.Event(), threading.Event()

    class Slow(HashEmbedder):  # an update's embedding waits until released; questions do not
        def embed_documents(self, texts):
            embedding.set()
            assert release.wait(30)
            return super().embed_documents(texts)

    engine = Engine(tiny_project, Slow(256))
    release.set()
    engine.build()
    release.clear()
    client = TestClient(create_app(engine=engine))
    build = engine.index.path
    doc = client.post("/v1/documents", files={"file": ZURICH}).json()["documents"][0]["id"]
    assert embedding.wait(30)
    r = client.post("/v1/ask", json={"question": GENEVA})  # while the update embeds
    assert r.status_code == 200 and r.json()["citations"][0]["source"] == "corpus/en_weather.md"
    assert client.get("/v1/info").json()["build"]["running"] is True
    assert client.get(f"/v1/documents/{doc}").status_code == 404 and engine.index.path == build
    later = client.post("/v1/documents", files={"file": ("oslo.txt", b"Oslo news\nOslo had a quiet week of rain.\n")})
    assert later.json()["indexing"] == "queued"  # behind the running build, which starts one more when it ends
    release.set()
    for d in (doc, later.json()["documents"][0]["id"]):
        wait_until(lambda d=d: client.get(f"/v1/documents/{d}").status_code == 200)
    assert client.get("/v1/info").json()["corpus"]["documents"] == 5


def test_a_worker_picks_up_a_build_written_by_another(tiny_engine):
    other = Engine(tiny_engine.settings, HashEmbedder(256))  # another worker (process) on the same folder
    client = TestClient(create_app(engine=tiny_engine))
    (tiny_engine.settings.corpus_dir / ZURICH[0]).write_bytes(ZURICH[1])
    report = other.build()
    assert tiny_engine.index.path != report.path  # this worker has not built it …
    r = client.post("/v1/ask", json={"question": "How many sailing boats did the Zurich harbour master count?"})
    assert r.json()["citations"][0]["source"] == "corpus/zurich.txt"  # … and answers from it
    assert tiny_engine.index.path == report.path


# ---------------------------------------------------------------- security and bad input
def test_token_is_required_when_set(tiny_engine):
    engine = Engine(tiny_engine.settings.replace(api_token="s3cret"), tiny_engine.embedder)
    assert "s3cret" not in repr(engine.settings)
    client = TestClient(create_app(engine=engine))
    ask = {"question": GENEVA}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                    {"Authorization": "Basic czNjcmV0"}):
        assert "bearer token" in one_error(client.post("/v1/ask", json=ask, headers=headers), 401)
        assert client.get("/v1/models", headers=headers).status_code == 401
        assert client.post("/v1/documents", files={"file": ZURICH}, headers=headers).status_code == 401
    assert not (engine.settings.corpus_dir / "zurich.txt").exists()
    ok = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/ask", json=ask, headers=ok).status_code == 200
    assert client.get("/v1/models", headers=ok).status_code == 200
    assert client.get("/v1/health").status_code == 200  # for load balancers: says nothing of the documents


@pytest.mark.parametrize("body, says", [
    (b"{", "not valid JSON"),
    (b"[]", "Input should be a valid dictionary"),
    (b'{"q": "x"}', "question: Field required"),
    (b'{"question": "   "}', "the question is empty"),
    (b'{"question": "' + b"x" * 3000 + b'"}', "the question is too long"),
    (b'{"question": "x", "k": 0}', "k: Input should be greater than or equal to 1"),
    (b'{"question": "x", "mode": "magic"}', "mode: Input should be"),
    (b'{"question": "x", "since": "yesterday"}', "since must be a date as YYYY-MM-DD"),
    (b'{"question": "x", "since": "2024-02-01", "until": "2024-01-01"}', "is after until"),
    (b'{"question": "x", "tempreature": 1}', "tempreature: Extra inputs are not permitted"),
])
def test_bad_asks_get_one_message(client, body, says):
    r = client.post("/v1/ask", content=body, headers={"Content-Type": "application/json"})
    assert says in one_error(r, 400)


@pytest.mark.parametrize("messages, says", [
    ([], "messages: List should have at least 1 item"),
    ([{"role": "user", "content": GENEVA}, {"role": "assistant", "content": "…"}], "the last message must be"),
    ([{"role": "user", "content": " "}], "the question is empty"),
    ([{"role": "wizard", "content": GENEVA}], "messages.0.role: Input should be"),
    ([{"content": GENEVA}], "messages.0.role: Field required"),
])
def test_bad_chats_get_one_message(client, messages, says):
    assert says in one_error(client.post("/v1/chat/completions", json={"messages": messages}), 400)


def test_unknown_routes_and_methods(client):
    assert one_error(client.get("/v1/nothing"), 404) == "not found: GET /v1/nothing"
    assert one_error(client.delete("/v1/ask"), 405) == "method not allowed: DELETE /v1/ask"


def test_an_unexpected_failure_is_500_without_details(client, tiny_engine, monkeypatch):
    def broken():
        raise RuntimeError("secret detail at /srv/private/path")

    monkeypatch.setattr(tiny_engine, "latest_index", broken)
    r = client.post("/v1/ask", json={"question": GENEVA})
    message = one_error(r, 500)
    assert "RuntimeError" in message and "secret" not in r.text


def test_no_index_is_503(tiny_project):
    client = TestClient(create_app(engine=Engine(tiny_project, HashEmbedder(256))))
    assert "rag index" in one_error(client.post("/v1/ask", json={"question": GENEVA}), 503)
    assert one_error(client.get("/v1/health"), 503)


def test_cors_only_when_configured(tiny_engine):
    pre = {"Origin": "https://news.example", "Access-Control-Request-Method": "POST"}
    plain = TestClient(create_app(engine=tiny_engine))
    assert "access-control-allow-origin" not in plain.options("/v1/ask", headers=pre).headers
    engine = Engine(tiny_engine.settings.replace(api_cors_origins="https://news.example, https://b.example"),
                    tiny_engine.embedder)
    r = TestClient(create_app(engine=engine)).options("/v1/ask", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://news.example"


def test_binding_beyond_localhost_needs_a_token(tmp_path, monkeypatch, capsys):
    write_tiny_corpus(tmp_path)
    monkeypatch.setenv("RAG_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_MODEL", "hash-256")
    monkeypatch.delenv("RAG_API_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        assert main(["api", "--host", host, "--no-index"]) == 2
        assert "set RAG_API_TOKEN" in capsys.readouterr().err
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "0.0.0.0", "::")] == \
        [True, True, True, True, True, False, False]
    monkeypatch.setenv("RAG_API_TOKEN", "  ")  # blank is no token
    assert main(["api", "--host", "0.0.0.0", "--no-index"]) == 2


# ---------------------------------------------------------------- the real server, real clients
@pytest.fixture
def served_project(tmp_path, monkeypatch) -> tuple[Path, dict]:
    """A tiny project with its index built, and the environment that serves it with the hash embedder."""
    write_tiny_corpus(tmp_path)
    env = {"RAG_MODEL": "hash-256", "RAG_ABSTAIN_THRESHOLD": "0.05"}
    for k, v in (env | {"RAG_PROJECT_ROOT": str(tmp_path)}).items():
        monkeypatch.setenv(k, v)
    assert main(["index", "--quiet"]) == 0
    return tmp_path, env


def test_the_openai_client_asks_follows_up_and_streams(served_project):
    from openai import AuthenticationError, BadRequestError, OpenAI

    project, env = served_project
    with bench_api().serve(project, 1, env | {"RAG_API_TOKEN": "t0ken"}, timeout=60) as server:
        ai = OpenAI(base_url=f"{server.url}/v1", api_key="t0ken", max_retries=0)
        assert [m.id for m in ai.models.list()] == ["rag"]
        first = ai.chat.completions.create(model="rag", messages=[{"role": "user", "content": "تماس پوتین و ترامپ"}])
        text = first.choices[0].message.content
        assert "[1]" in text and "corpus/fa_call.txt" in text
        assert first.model_extra["citations"][0]["source"] == "corpus/fa_call.txt"
        follow = ai.chat.completions.create(model="rag", messages=[
            {"role": "user", "content": "تماس پوتین و ترامپ"}, {"role": "assistant", "content": text},
            {"role": "user", "content": "چقدر طول کشید؟"}])
        assert "corpus/fa_call.txt" in follow.choices[0].message.content
        stream = ai.chat.completions.create(model="rag", stream=True,
                                            messages=[{"role": "user", "content": GENEVA}])
        parts = [c.choices[0].delta.content or "" for c in stream]
        assert "".join(parts) == "The airport closed for three hours. [1]\n\n[1] Geneva weather — corpus/en_weather.md [50:85]"
        assert len(parts) > 2
        with pytest.raises(BadRequestError, match="the question is empty"):
            ai.chat.completions.create(model="rag", messages=[{"role": "user", "content": ""}])
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_load_two_workers_while_an_upload_re_indexes(served_project):
    """8 clients × 25 questions against two workers while a file is uploaded: no errors, and
    the upload is indexed and seen by every worker."""
    bench = bench_api()
    project, env = served_project
    questions = ["How long was the airport closed in Geneva?", "تماس پوتین و ترامپ چقدر طول کشید؟",
                 "كم استمر اجتماع كيري وظريف؟", "Where did Kerry meet Zarif?"]
    with bench.serve(project, 2, env, timeout=90) as server:
        load = bench.run_load(server, questions, clients=8, per_client=25, wait_indexed=60)
        r = bench.httpx.post(f"{server.url}/v1/ask", json={"question": bench.UPLOAD_QUESTION})
    assert load.errors == []
    assert len(load.latencies_ms) == 200
    assert load.upload["status"] == 202 and load.upload["new"] is True
    assert load.indexed_after_s is not None, "the upload was never indexed"
    assert r.json()["citations"][0]["source"] == "corpus/bench-upload.txt"
    print(f"\n2 workers, 8 clients × 25 questions: p50 {load.quantile(0.5):.0f} ms, p95 {load.quantile(0.95):.0f} ms, "
          f"upload indexed after {load.indexed_after_s:.1f} s")


# ---------------------------------------------------------------- the real model
@pytest.mark.model
def test_real_model_answers_and_cites_through_the_api(seed_engine):
    client = TestClient(create_app(engine=seed_engine))
    question = "مدت تماس تلفنی پوتین و ترامپ چقدر بود؟"
    got = client.post("/v1/ask", json={"question": question}).json()
    assert got["abstained"] is False and got["citations"]
    for c in got["citations"]:
        span = client.get(f"/v1/documents/{c['doc_id']}", params={"start": c["start"], "end": c["end"]}).json()
        assert span["text"] == c["text"]
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]}).json()
    assert chat["choices"][0]["message"]["content"].startswith(got["answer"])
    assert chat["citations"] == got["citations"]
