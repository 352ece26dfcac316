"""How fast answers are with the judge: warm `ask` latency over this project's index, and the
judge's time per number of candidates it reads.

Every question of the seed gold set (eval/gold/seed_qa.jsonl), asked warm, --repeats times:
the median and p95 of the whole answer and of the judge's part (Answer.timings_ms), then
the judge alone reading 1, 2, 3, 4 and 6 of each question's candidates. Prints the CPU's
flags: the judge runs in float32 on every CPU (the same answers everywhere), so only the
speed differs between hosts.

    python eval/bench_judge_speed.py [--gold eval/gold/seed_qa.jsonl] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rag.answer import judge_top_k
from rag.config import Settings
from rag.engine import Engine
from rag.runtime import cpu_flags_line
from rag.verifier import load_verifier

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "seed_qa.jsonl")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in args.gold.read_text("utf-8").splitlines() if line.strip()]
    engine = Engine(Settings.from_env()).warm_up()
    judge = load_verifier(engine.settings)
    print(cpu_flags_line())
    print(f"{len(questions)} questions × {args.repeats}, warm; the judge: {getattr(judge, 'backend', 'torch')}, "
          f"reads the best {judge_top_k(engine.index)}\n")
    totals, judged, answers = [], [], []
    for _ in range(args.repeats):
        for q in questions:
            a = engine.ask(q)
            totals.append(a.timings_ms["total"])
            judged.append(a.timings_ms["judge"])
            answers.append(a)
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print("| measured | p50 ms | p95 ms |\n|---|---|---|")
    print(f"| ask, whole answer | {p(totals, 50):.0f} | {p(totals, 95):.0f} |")
    print(f"| the judge's part | {p(judged, 50):.0f} | {p(judged, 95):.0f} |")
    print("\n| candidates read | judge p50 ms | judge p95 ms |\n|---|---|---|")
    index = engine.index
    for k in (1, 2, 3, 4, 6):
        times = []
        for a in answers[:len(questions)]:
            texts = [index.sentence_text(j) for j in a.candidates[:k]]
            if len(texts) < k:
                continue
            t0 = time.perf_counter()
            judge.score(a.question, texts)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"| {k} | {p(times, 50):.0f} | {p(times, 95):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
