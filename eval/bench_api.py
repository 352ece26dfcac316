"""Benchmark: `rag api` under load — concurrent clients asking while an upload re-indexes.

Starts the server (`rag api --workers W`) on a free localhost port over a copy of a project
(corpus + index), then C clients each ask Q questions (POST /v1/ask, the seed gold set's
questions in turn) while one file is uploaded after a quarter of them; prints one row per
worker count: p50/p95 latency, errors (any non-200 answer or failed request), whether the
upload was indexed and how long after it was accepted, and the server's CPU use (all its
processes, in cores). tests/test_api.py runs the same load with the hash embedder.

    python eval/bench_api.py [--project .] [--workers 1 2] [--clients 8] [--questions 25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
UPLOAD = ("bench-upload.txt", "Zurich harbour news\nThe Zurich harbour master counted 412 sailing boats on Sunday. "
          "The lake festival ends on Monday evening.\n")
UPLOAD_QUESTION = "How many sailing boats did the Zurich harbour master count?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path


@contextmanager
def serve(project: Path, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 300) -> Iterator[Server]:
    """`rag api` on a free localhost port over `project` (its index already built), stopped afterwards."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update({"RAG_PROJECT_ROOT": str(project), "PYTHONPATH": str(ROOT), **(env or {})})
    log = project / f"api-{port}.log"
    cmd = [sys.executable, "-m", "rag.cli", "api", "--port", str(port), "--workers", str(workers), "--no-index"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=environ, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < workers:  # every worker warmed up (each logs its startup once it is)
            if proc.poll() is not None:
                raise RuntimeError(f"rag api exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"rag api did not start within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
            ready = log.read_text(errors="replace").count("Application startup complete")
        httpx.get(f"{server.url}/v1/health", timeout=30).raise_for_status()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    upload: dict | None = None
    indexed_after_s: float | None = None  # the upload found in the index this long after it was accepted
    seconds: float = 0.0
    cpu_s: float = 0.0  # the server's processes' CPU time during the run

    def quantile(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run_load(server: Server, questions: list[str], clients: int, per_client: int,
             upload: tuple[str, str] | None = UPLOAD, wait_indexed: float = 600) -> Load:
    """`clients` threads each ask `per_client` questions in turn (client i starts at question
    i) while `upload` is sent once a quarter of all questions are answered; then waits until
    the uploaded document can be read from every worker (GET /v1/documents/{id}, 10 times in a row)."""
    load, lock = Load(), threading.Lock()
    total, done = clients * per_client, [0]
    quarter = threading.Event()
    cpu0 = _cpu_seconds(server.proc.pid)

    def client(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for j in range(per_client):
                q = questions[(i + j) % len(questions)]
                t0 = time.perf_counter()
                try:
                    r = http.post("/v1/ask", json={"question": q})
                    ok = r.status_code == 200 and "answer" in r.json()
                    why = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    load.latencies_ms.append(ms)
                    if not ok:
                        load.errors.append(f"client {i} question {j}: {why}")
                    done[0] += 1
                    if done[0] >= total // 4:
                        quarter.set()

    def uploader() -> None:
        quarter.wait()
        name, text = upload
        try:
            r = httpx.post(f"{server.url}/v1/documents", files={"file": (name, text.encode())}, timeout=120)
            load.upload = r.json() | {"status": r.status_code}
        except httpx.HTTPError as e:
            load.upload = {"status": None, "error": str(e)}
        load.upload["accepted_at"] = time.monotonic()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    if upload is not None:
        threads.append(threading.Thread(target=uploader, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.seconds = time.monotonic() - t0
    load.cpu_s = _cpu_seconds(server.proc.pid) - cpu0
    if upload is not None and load.upload and load.upload.get("status") == 202:
        doc = load.upload["documents"][0]["id"]
        deadline, streak = time.monotonic() + wait_indexed, 0
        while streak < 10 and time.monotonic() < deadline:
            r = httpx.get(f"{server.url}/v1/documents/{doc}", timeout=60)
            streak = streak + 1 if r.status_code == 200 else 0
            if streak == 1:
                load.indexed_after_s = time.monotonic() - load.upload["accepted_at"]
            if streak == 0:
                time.sleep(0.2)
        if streak < 10:
            load.indexed_after_s = None
    return load


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its children, alive now."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_description() -> str:
    """The CPU model, core count and the vector flags that decide the embedder's speed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
             if f in flags]
    return f"{model}, {os.cpu_count()} cores; flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=ROOT, help="a project folder with corpus/ and a built index/")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--questions", type=int, default=25, help="questions per client")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in (ROOT / "eval/gold/seed_qa.jsonl").read_text("utf-8").splitlines()
                 if line.strip()]
    print(f"CPU: {cpu_description()}")
    print("| workers | clients | questions | p50 ms | p95 ms | errors | upload indexed after | server CPU (cores) | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        for part in ("corpus", "index"):  # private copies: the upload changes both
            shutil.copytree(args.project / part, base / part, symlinks=True)
        subprocess.run([sys.executable, "-m", "rag.cli", "index", "--quiet"], cwd=base, check=True,
                       env=dict(os.environ, RAG_PROJECT_ROOT=str(base), PYTHONPATH=str(ROOT)))  # if not current
        for workers in args.workers:
            project = Path(tmp) / f"workers-{workers}"
            shutil.copytree(base, project, symlinks=True)
            with serve(project, workers) as server:
                load = run_load(server, questions, args.clients, args.questions)
            indexed = "lost" if load.indexed_after_s is None else f"{load.indexed_after_s:.1f} s"
            print(f"| {workers} | {args.clients} | {len(load.latencies_ms)} | {load.quantile(0.5):.0f} | "
                  f"{load.quantile(0.95):.0f} | {len(load.errors)} | {indexed} | {load.cpu_s / load.seconds:.2f} | "
                  f"{load.seconds:.0f} |", flush=True)
            for e in load.errors[:5]:
                print(f"  error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
