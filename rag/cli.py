"""The `rag` command: argument parsing and printing only; the work lives in the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from rag.config import MODES, Settings
from rag.progress import TerminalProgress


class CliError(Exception):
    """An expected failure: printed as one line on stderr, exit status 2."""


def _settings(args) -> Settings:
    return Settings.from_env(
        corpus_dir=getattr(args, "corpus", None), index_dir=getattr(args, "index", None),
        model=getattr(args, "model", None), k=getattr(args, "k", None), mode=getattr(args, "mode", None),
        since=getattr(args, "since", None), until=getattr(args, "until", None),
    )


def _print_answer(ans, index, as_json: bool) -> None:
    if as_json:
        print(json.dumps(ans.to_dict(index), ensure_ascii=False), flush=True)
        return
    if ans.source_langs:
        names = {"fa": "Persian", "ar": "Arabic", "en": "English"}
        print(f"(searched only the {' and '.join(names.get(x, x) for x in ans.source_langs)} documents, "
              "which the question names)")
    print(ans.text)
    for c in ans.citations:
        print(f"  [{c.n}] {c.title} — {c.where} [{c.start}:{c.end}]")
    if ans.abstained and ans.hits:
        print("  closest passages:")
        for h in ans.hits[:3]:
            doc = index.documents[h.passage.doc_id]
            print(f"   - {doc.source} [{h.passage.start}:{h.passage.end}] {h.passage.text[:100]}…")
    print(flush=True)


def _print_reading(r, as_json: bool) -> None:
    """How a conversation turn was understood (before its answer)."""
    if as_json:
        print(json.dumps({"question": r.question, "reading": r.reading, "searched": r.query}, ensure_ascii=False),
              flush=True)
    elif r.previous is not None:
        how = f"a follow-up to: {r.previous}" if r.reading == "in-context" else "a new question"
        print(f"(understood as {how})")


def _printable(text: str) -> str:
    """Text that can be printed as UTF-8: bytes that were not UTF-8 (surrogate escapes) as U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def _stdin_lines():
    """Standard input line by line, each decoded on its own: a line that is not UTF-8 keeps its
    bad bytes as surrogate escapes (reported as that question's error), the next ones are read."""
    binary = getattr(sys.stdin, "buffer", None)
    for line in binary if binary is not None else sys.stdin:
        yield line.decode("utf-8", "surrogateescape") if isinstance(line, bytes) else line


def cmd_ask(args) -> int:
    from rag import verifier
    from rag.engine import Engine

    settings = _settings(args)
    engine = Engine(settings, on_progress=TerminalProgress())
    questions = _stdin_lines() if args.question == "-" else [args.question]
    if args.question != "-" and not args.question.strip():
        raise CliError("the question is empty")
    index = engine.index  # fail early (no index: before the model is loaded, and before reading stdin)
    # the judge (a second model) loads while the first question is embedded; an answer that needs it
    # waits for it, and so does the exit: a process that ends while this thread is inside torch or OpenVINO
    # tears their native libraries down under it, and crashed (status 139) after printing its answers
    warm = threading.Thread(target=verifier.warm_up, args=(settings, False), name="rag-judge-warm-up", daemon=True)
    warm.start()
    try:
        return _answer_all(args, engine, index, questions)
    finally:
        warm.join()


def _answer_all(args, engine, index, questions) -> int:
    """Answer each question (or conversation turn) and print it; 2 when any was an error."""
    from rag.answer import QuestionError

    status = 0
    previous = None  # --chat: the conversation so far (rag.conversation)
    for q in questions:
        q = q.rstrip("\n")
        if args.question == "-" and not q.strip():
            continue
        try:
            if args.chat:
                from rag.conversation import reply

                r = reply(index, engine.embedder, q, previous, engine.settings, args.mode, args.k)
                previous = r.context()
                _print_reading(r, args.json)
                ans = r.answer
            else:
                ans = engine.ask(q, mode=args.mode, k=args.k)
        except QuestionError as e:
            if args.question != "-":
                raise CliError(str(e)) from e
            print(f"error: {e}", file=sys.stderr)
            if args.json:  # the question as far as it is text (bytes that are not UTF-8 shown as U+FFFD)
                print(json.dumps({"question": _printable(q), "error": str(e)}, ensure_ascii=False), flush=True)
            status = 2
            continue
        _print_answer(ans, index, args.json)
    return status


def cmd_index(args) -> int:
    from rag.engine import Engine

    with TerminalProgress(enabled=not args.quiet) as progress:
        engine = Engine(_settings(args), on_progress=progress)
        report = engine.build(wait=not args.no_wait, rehash=args.verify)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        counts = f"{report.documents} documents → {report.passages} passages, {report.sentences} sentences"
        if report.update == "unchanged":
            print(f"the index is up to date ({counts}): nothing to do → {engine.settings.relative(report.path)}")
        else:
            print(f"indexed {counts} ({report.embedded_sentences} sentences embedded, {report.reused} reused) "
                  f"in {report.seconds:.1f} s → {engine.settings.relative(report.path)}")
        for note in report.notes:
            print(f"note: {note}")
        if report.skipped:
            print(f"skipped {len(report.skipped)}: " + "; ".join(f"{s.source} ({s.reason})" for s in report.skipped))
    return 0


def cmd_add(args) -> int:
    from rag.feeds import add_feed

    settings = _settings(args)
    report = add_feed(args.feed, settings.corpus_dir, settings.index_dir)
    built = None
    if report.added and not args.no_index:
        from rag.engine import Engine

        with TerminalProgress(enabled=not args.json) as progress:
            built = Engine(settings, on_progress=progress).build()
    if args.json:
        print(json.dumps(report.to_dict() | {"indexed": built.to_dict() if built else None}, ensure_ascii=False))
        return 0
    print(f"{len(report.added)} new item(s) added to {settings.relative(report.path)}, "
          f"{len(report.known)} already in the corpus")
    if report.from_feed:
        print(f"{len(report.from_feed)} linked page(s) could not be read; the feed's own text was used: "
              + " ".join(report.from_feed))
    if built:
        print(f"indexed {built.documents} documents ({built.embedded_sentences} sentences embedded)")
    return 0


def cmd_model(args) -> int:
    from rag.models import ensure_model

    settings = _settings(args)
    if args.verify:
        print(f"re-hashing the weights of {settings.model} …", file=sys.stderr)
    with TerminalProgress() as progress:
        path = ensure_model(settings.model, settings.models_dir, on_progress=progress, verify=args.verify)
    print(f"model {settings.model} ready at {path}" + (" (weights re-hashed: sha256 matches)" if args.verify else ""))
    if not settings.model.startswith("hash-"):
        from rag import verifier
        from rag.models import prepare_openvino

        with TerminalProgress() as progress:  # the OpenVINO exports, once (a failed one is tried again here)
            print(prepare_openvino(settings, path, on_progress=progress))
            print(verifier.prepare(settings, on_progress=progress))
    return 0


def cmd_info(args) -> int:
    from rag.index import Index, index_files
    from rag.models import model_path, weights_hash

    settings = _settings(args)
    idx = Index.load(settings.index_dir, settings, rehash=args.verify)  # --verify: every file re-hashed
    m = idx.manifest
    info = {"index": str(idx.path), "model": m["model"], "built_at": m["built_at"], "corpus": m["corpus"],
            "chunking": m["chunking"], "abstain_threshold": idx.abstain_threshold(settings),
            "segments": [{k: seg[k] for k in ("name", "faiss", "documents", "passages", "sentences")}
                         for seg in m["segments"]],
            "deleted_documents": sum(len(v) for v in m.get("deleted", {}).values()),
            "store": m.get("store") or {"kind": "faiss"}, "vectors": idx.store.count()}
    if args.verify:
        folder = model_path(settings.model, settings.models_dir)
        digest = weights_hash(folder, verify=True) if folder.is_dir() else "model not on disk"
        info["verified"] = {"index_files": len(index_files(settings.index_dir, m)), "model_weights_sha256": digest,
                            "model_matches_index": digest == m["model"]["sha256"]}
    print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def cmd_serve(args) -> int:
    """Make sure the model and the index are ready, then start the chat app on localhost."""
    from rag.engine import Engine

    settings = _settings(args)
    if not args.no_index:
        with TerminalProgress() as progress:
            report = Engine(settings, on_progress=progress).ensure_index()
        print("index is up to date" if report is None else f"indexed {report.documents} documents", file=sys.stderr)
    app = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    env = dict(os.environ, RAG_PROJECT_ROOT=str(settings.project_root), RAG_CORPUS_DIR=str(settings.corpus_dir),
               RAG_INDEX_DIR=str(settings.index_dir), RAG_MODEL=settings.model)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.address,
           "--server.port", str(args.port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal"]  # as .streamlit/config.toml, wherever it is started from
    print(f"opening the chat app at http://{args.address}:{args.port}", file=sys.stderr)
    os.execvpe(cmd[0], cmd, env)
    return 0


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps a server reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_api(args) -> int:
    """Make sure the model and the index are ready, then serve the HTTP API (rag/api.py, docs/api.md)."""
    settings = _settings(args)
    if not is_loopback(args.host) and settings.api_token is None:
        raise CliError(f"binding to {args.host} opens the API to other machines: set RAG_API_TOKEN (clients then "
                       "send 'Authorization: Bearer <token>'), or bind to 127.0.0.1")
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    try:
        import uvicorn

        from rag.api import create_app
    except ImportError as e:
        raise CliError(f"the API needs FastAPI and uvicorn ({e}): pip install -e '.[api]'") from e
    from rag.engine import Engine

    where = f"serving the API at http://{args.host}:{args.port} (interactive docs at /docs)"
    if args.workers == 1:
        engine = Engine(settings, on_progress=TerminalProgress())
        if not args.no_index:
            report = engine.ensure_index()
            print("index is up to date" if report is None else f"indexed {report.documents} documents", file=sys.stderr)
        print(where, file=sys.stderr)
        uvicorn.run(create_app(engine=engine), host=args.host, port=args.port)
        return 0
    # each worker is a process of its own with its own engine (rag.api.app), set up from the
    # environment: the settings given here go with it. The index is updated by `rag index` in a
    # process of its own, so that this one, which only supervises the workers, holds no model
    os.environ.update(RAG_PROJECT_ROOT=str(settings.project_root), RAG_CORPUS_DIR=str(settings.corpus_dir),
                      RAG_INDEX_DIR=str(settings.index_dir), RAG_MODEL=settings.model)
    if not args.no_index and subprocess.run([sys.executable, "-m", "rag.cli", "index"]).returncode != 0:
        raise CliError("the index could not be updated (see above)")
    print(f"{where}, {args.workers} workers", file=sys.stderr)
    uvicorn.run("rag.api:app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rag", description="Grounded question answering over corpus/ with citations.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, corpus=True):
        if corpus:
            sp.add_argument("--corpus", type=Path, help="corpus folder (default: corpus/)")
        sp.add_argument("--index", type=Path, help="index folder (default: index/)")
        sp.add_argument("--model", help="embedding model: a known name or a sentence-transformers folder")

    sp = sub.add_parser("index", help="build or update the index of the corpus")
    common(sp)
    sp.add_argument("--json", action="store_true", help="print the build report as JSON")
    sp.add_argument("--quiet", action="store_true", help="no progress output")
    sp.add_argument("--no-wait", action="store_true",
                    help="fail at once if another build of this index is running (default: wait for it)")
    sp.add_argument("--verify", action="store_true",
                    help="re-hash every index file first and repair what is damaged (a missing or damaged file "
                         "is always repaired; without --verify files are checked by size and time)")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("ask", help="answer a question (or '-' to read one per line from stdin)")
    sp.add_argument("question")
    common(sp, corpus=False)
    sp.add_argument("--k", type=int, help="passages to retrieve (default 5)")
    sp.add_argument("--mode", choices=MODES, help="retrieval mode (default hybrid)")
    sp.add_argument("--json", action="store_true", help="one JSON object per answer")
    sp.add_argument("--chat", action="store_true",
                    help="with '-': the lines are turns of one conversation (follow-ups may lean on the previous "
                         "turn); each answer is preceded by how it was understood")
    sp.add_argument("--since", metavar="YYYY-MM-DD",
                    help="only documents dated on or after this day (undated documents are left out)")
    sp.add_argument("--until", metavar="YYYY-MM-DD",
                    help="only documents dated on or before this day (undated documents are left out)")
    sp.set_defaults(func=cmd_ask)

    sp = sub.add_parser("add", help="add the new items of an RSS/Atom feed (a file or URL) and index them")
    sp.add_argument("feed", help="feed file or http(s) URL")
    common(sp)
    sp.add_argument("--no-index", action="store_true", help="only add the items to the corpus folder")
    sp.add_argument("--json", action="store_true", help="print what was added as JSON")
    sp.set_defaults(func=cmd_add)

    sp = sub.add_parser("model", help="fetch and verify the embedding model (and export it to OpenVINO once)")
    sp.add_argument("action", choices=["fetch"])
    sp.add_argument("--model", help="model name (default embeddinggemma-300m)")
    sp.add_argument("--verify", action="store_true", help="re-hash the weights on disk (normally trusted by size and date)")
    sp.set_defaults(func=cmd_model)

    sp = sub.add_parser("info", help="what the index holds")
    common(sp, corpus=False)
    sp.add_argument("--verify", action="store_true", help="re-hash every index file and the model's weights")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("serve", help="update the index if needed and open the chat app")
    common(sp)
    sp.add_argument("--port", type=int, default=8501)
    sp.add_argument("--address", default="127.0.0.1", help="bind address (default localhost only)")
    sp.add_argument("--no-index", action="store_true", help="do not build/update the index first")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("api", help="update the index if needed and serve the HTTP API (docs/api.md)")
    common(sp)
    sp.add_argument("--host", default="127.0.0.1",
                    help="bind address (default localhost only; any other needs RAG_API_TOKEN set)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--workers", type=int, default=1,
                    help="worker processes, each with its own copy of the model (default 1)")
    sp.add_argument("--no-index", action="store_true", help="do not build/update the index first")
    sp.set_defaults(func=cmd_api)

    try:
        from rag.evaluation import add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    return p


def _log_to_stderr(quiet: bool) -> None:
    """The library logs (rag.*); the command shows its messages as plain lines on stderr."""
    logger = logging.getLogger("rag")
    for h in [h for h in logger.handlers if getattr(h, "rag_cli", False)]:
        logger.removeHandler(h)  # a previous run's, bound to the stderr of its time
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.rag_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr(getattr(args, "quiet", False))
    from rag.answer import QuestionError
    from rag.index import IndexProblem
    from rag.models import ModelError
    from rag.verifier import VerifierError

    try:
        return args.func(args)
    except (CliError, IndexProblem, ModelError, QuestionError, VerifierError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions: say which file, no traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
