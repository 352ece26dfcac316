"""The HTTP API (`rag api`, docs/api.md): the same grounded answers as the app and the CLI,
for other programs, with an OpenAI-compatible chat endpoint that chat clients can use as a model.

    POST /v1/ask                 a question (+ earlier questions) -> the JSON of `rag ask --json`
    POST /v1/chat/completions    OpenAI's chat completions, `stream: true` as server-sent events
    GET  /v1/models              the one model
    GET  /v1/documents/{id}      a document's text, or a cited span with its context
    POST /v1/documents           upload a file (as the app: same checks), indexed in the background
    GET  /v1/health, /v1/info    liveness; what the index holds and the latest upload's build

`create_app(settings)` builds the app around one `Engine`; every request takes the latest
index once (`Engine.latest_index`), so a build swapped in by another worker or by
`rag index` is picked up between requests, and a question asked during a re-index is
answered from the index in place. Errors are one message, OpenAI's shape:
{"error": {"message": ..., "type": ...}}, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rag import __version__
from rag.answer import Answer, QuestionError
from rag.config import Mode, Settings
from rag.conversation import Reply, reply
from rag.corpus import SUFFIXES
from rag.engine import Engine
from rag.index import Index, IndexProblem
from rag.models import ModelError
from ui.builds import Builds, Job
from ui.uploads import UploadError, add_upload

log = logging.getLogger(__name__)

MODEL_ID = "rag"  # the one model GET /v1/models lists; a chat request may name any model
# earlier questions replayed to understand a follow-up: a turn leans on the turn before it,
# which leans on its own (rag.conversation), so the last few settle the reading
MAX_PREVIOUS = 3
SPAN_CONTEXT = 300  # characters either side of a cited span (GET /v1/documents/{id}?start=&end=)
FORM_OVERHEAD = 64 * 1024  # multipart headers and boundaries around an uploaded file
UPLOAD_STATUS = {"upload_too_big": 413, "upload_no_type": 415, "upload_unsupported": 415,
                 "upload_duplicate": 409, "upload_race": 409, "upload_too_many": 409}



class Filters(BaseModel):
    """Per-request retrieval settings: None = the server's setting."""
    k: int | None = Field(None, ge=1, le=50, description="passages to retrieve (default 5)")
    mode: Mode | None = Field(None, description="retrieval mode (default hybrid)")
    since: str | None = Field(None, description="only documents dated on or after this day (YYYY-MM-DD)")
    until: str | None = Field(None, description="only documents dated on or before this day (YYYY-MM-DD)")


class AskRequest(Filters):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="the question, in Persian, Arabic or English")
    previous: list[str] = Field(default_factory=list, max_length=100,
                                description="the conversation's earlier questions, oldest first: the question "
                                            "may be a follow-up to the last of them")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(Filters):
    """OpenAI's chat completion request; parameters that steer a generator (temperature,
    max_tokens, …) are accepted and have nothing to steer."""
    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API over `engine` (else a new Engine of `settings`, else of the environment),
    warmed up when the server starts."""
    engine = engine or Engine(settings or Settings.from_env())
    settings = engine.settings
    builds = Builds(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            engine.warm_up()
        except IndexProblem as e:  # answered as 503 until an index is built
            log.warning("%s", e)
        yield

    app = FastAPI(title="rag", version=__version__, lifespan=lifespan,
                  description="Grounded answers with citations from the documents of this server "
                              "(Persian, Arabic, English). See docs/api.md.")
    app.state.engine, app.state.builds = engine, builds
    _errors(app)
    if settings.api_cors_origins.strip():
        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.api_cors_origins.split(",")
                                                          if o.strip()],
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=settings.max_file_bytes + FORM_OVERHEAD)
    auth = [Depends(bearer(settings.api_token))]

    @app.get("/v1/health")
    def health() -> dict:
        """Whether the server can answer: 200 with the build it answers from, or 503 with why not."""
        return {"status": "ok", "index": engine.latest_index().path.name}

    @app.get("/v1/info", dependencies=auth)
    def info() -> dict:
        """What the index holds, the limits on uploads, and this worker's latest upload build."""
        index = engine.latest_index()
        m = index.manifest
        job = builds.poll()
        build = None if job is None else {
            "number": job.number, "files": job.files, "running": not job.finished,
            "error": None if job.error is None else str(job.error),
            "report": None if job.report is None else  # as `rag index --json`, without the server's paths
            {k: v for k, v in job.report.to_dict().items() if k != "path"}}
        return {"version": __version__, "model": m["model"]["id"], "index": index.path.name,
                "built_at": m["built_at"], "corpus": m["corpus"],
                "store": (m.get("store") or {"kind": "faiss"}).get("kind"),
                "uploads": {"types": list(SUFFIXES), "max_file_mb": settings.max_file_mb}, "build": build}

    @app.post("/v1/ask", dependencies=auth)
    def ask(req: AskRequest) -> dict:
        """The answer as `rag ask --json` prints it, with how the question was read
        (`reading`: alone or in-context, after `previous` questions) and what was searched."""
        index, r = converse(engine, [*req.previous, req.question], req)
        return r.answer.to_dict(index) | {"reading": r.reading, "searched": r.query}

    @app.get("/v1/models", dependencies=auth)
    def models() -> dict:
        return {"object": "list", "data": [model_card(engine)]}

    @app.post("/v1/chat/completions", dependencies=auth)
    def chat(req: ChatRequest):
        """OpenAI-compatible: the last message is the question (it must be the user's), the
        earlier user messages the conversation. The reply's content is the answer with [n]
        markers and the sources under it; `citations` holds them as data."""
        if req.messages[-1].role != "user":
            raise HTTPException(400, "the last message must be the user's question")
        questions = [m.text for m in req.messages if m.role == "user" and m.text.strip()]
        if not questions or questions[-1] != req.messages[-1].text:
            raise HTTPException(400, "the question is empty")
        _, r = converse(engine, questions, req)
        content, citations = chat_content(r.answer), [c.to_dict() for c in r.answer.citations]
        created = int(time.time())
        cid = "chatcmpl-" + hashlib.sha256(f"{time.time_ns()} {questions}".encode()).hexdigest()[:24]
        if req.stream:
            return StreamingResponse(chunks(cid, created, content, citations), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "citations": citations, "abstained": r.answer.abstained}

    @app.get("/v1/documents/{doc_id}", dependencies=auth)
    def document(doc_id: str, start: Annotated[int | None, Query(ge=0)] = None,
                 end: Annotated[int | None, Query(ge=0)] = None,
                 context: Annotated[int, Query(ge=0, le=10_000)] = SPAN_CONTEXT) -> dict:
        """A document's text and metadata; with `start` and `end` (a citation's offsets) only
        that span, with `context` characters before and after it."""
        doc = engine.latest_index().documents.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        d = doc.to_dict()
        if start is None and end is None:
            return d
        if start is None or end is None or not start < end <= len(doc.text):
            raise HTTPException(400, f"start and end must be given together, with start < end <= {len(doc.text)}")
        return {k: d[k] for k in ("id", "source", "title", "date", "url", "lang")} | {
            "start": start, "end": end, "text": doc.text[start:end],
            "before": doc.text[max(0, start - context):start], "after": doc.text[end:end + context],
            "page": doc.page_at(start)}

    @app.post("/v1/documents", status_code=202, dependencies=auth)
    def upload(file: Annotated[UploadFile, File(description=f"a {' '.join(SUFFIXES)} file")]) -> dict:
        """Add a file to the corpus with the app's checks (ui/uploads.py: type, size, a safe
        name, readable, not a copy) and index it in the background; questions go on being
        answered from the current index until the new one is swapped in."""
        data = file.file.read(settings.max_file_bytes + 1)
        index = engine.latest_index()
        known = {d.id: d.source for d in index.documents.values()}
        try:
            got = add_upload(file.filename or "", data, settings.corpus_dir, settings.project_root, known,
                             max_bytes=settings.max_file_bytes)
        except UploadError as e:
            raise HTTPException(UPLOAD_STATUS.get(e.key, 400), str(e)) from None
        indexing = start_build(builds) if got.new else "not needed"
        return {"source": got.source, "new": got.new, "indexing": indexing,
                "documents": [{"id": d.id, "title": d.title} for d in got.documents]}

    return app


def app() -> FastAPI:
    """The app for `uvicorn --factory rag.api:app`, one per worker process: settings from the
    environment (RAG_*), as `rag api` passes them on."""
    return create_app(Settings.from_env())


def converse(engine: Engine, questions: list[str], f: Filters) -> tuple[Index, Reply]:
    """Answer the last question as a turn of a conversation after the others (rag.conversation:
    the last MAX_PREVIOUS of them are replayed, each read as a turn, to understand it)."""
    try:
        settings = engine.settings.replace(since=f.since, until=f.until)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    index = engine.latest_index()  # once: the whole conversation is read in one build
    previous = None
    for q in questions[-1 - MAX_PREVIOUS:-1]:
        if q.strip():
            previous = reply(index, engine.embedder, q, previous, settings, f.mode, f.k).context()
    return index, reply(index, engine.embedder, questions[-1], previous, settings, f.mode, f.k)


def chat_content(ans: Answer) -> str:
    """The chat reply: the answer (with its [n] markers), then one line per cited sentence, as
    `rag ask` prints them: its document, where it is, and its offsets in the document's text."""
    if not ans.citations:
        return ans.text
    return ans.text + "\n\n" + "\n".join(f"[{c.n}] {c.title} — {c.where} [{c.start}:{c.end}]" for c in ans.citations)


def chunks(cid: str, created: int, content: str, citations: list[dict]) -> Iterator[str]:
    """The reply as OpenAI streams it: server-sent `chat.completion.chunk` events (the role,
    the content line by line, then the finish with the citations), ended by `[DONE]`."""
    def event(delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for line in content.splitlines(keepends=True):
        yield event({"content": line})
    yield event({}, "stop", citations=citations)
    yield "data: [DONE]\n\n"


def model_card(engine: Engine) -> dict:
    return {"id": MODEL_ID, "object": "model", "created": int(engine.latest_index().path.stat().st_mtime),
            "owned_by": "rag"}


def start_build(builds: Builds) -> str:
    """Index an uploaded file in the background: "started", or "queued" behind the build that
    is running, which starts one more for the files that waited when it ends (as the app
    does, ui/builds.py: here a thread waits for the end, where the app's page polls)."""
    running = builds.running()
    job = builds.start(1)
    threading.Thread(target=next_build, args=(builds, job), name="rag-next-build", daemon=True).start()
    return "queued" if job is running else "started"


def next_build(builds: Builds, job: Job) -> None:
    """Once `job` has ended, start the build for the files that waited for it, if any
    (Builds.poll: one build, whoever polls first)."""
    job.build.thread.join()
    builds.poll()


BEARER = HTTPBearer(auto_error=False, description="the server's RAG_API_TOKEN")


def bearer(token: str | None):
    """The auth dependency: with a token set, every request must carry it (Authorization: Bearer)."""
    def check(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token (send 'Authorization: Bearer <RAG_API_TOKEN>')",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


class BodyLimit:
    """Refuses a request whose declared body is over `limit` bytes (413) before it is read."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.limit:
                message = (f"the request body is over {self.limit // 2**20} MiB" if length.isdigit()
                           else "the Content-Length header is not a number")
                response = error(413 if length.isdigit() else 400, message)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    kind = {401: "authentication_error", 404: "not_found_error"}.get(status, kind)
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)


def _errors(app: FastAPI) -> None:
    """Every error as one message (OpenAI's shape); the traceback of an unexpected one goes to the log."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        message = str(e.detail)
        if e.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            message = f"{message.lower()}: {request.method} {request.url.path}"
        return error(e.status_code, message, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        if first.get("type") == "json_invalid":
            return error(400, "the request body is not valid JSON")
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        message = first.get("msg", "invalid request")
        return error(400, f"{where}: {message}" if where else message)

    @app.exception_handler(QuestionError)
    async def bad_question(request: Request, e: QuestionError):
        return error(400, str(e))

    @app.exception_handler(IndexProblem)
    @app.exception_handler(ModelError)
    async def unavailable(request: Request, e: Exception):
        return error(503, str(e))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return error(500, f"internal error ({type(e).__name__}); the server log has the details")
