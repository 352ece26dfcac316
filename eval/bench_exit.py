"""Back-to-back `rag ask --json` runs: how each one exits.

A run must end with status 0 after printing its answer: a segfault while the process tears
down its native libraries (OpenVINO, torch, FAISS threads) gives 139 (-11 here) to a script
that checks the status, however right the answer it printed. Uses the project's index
(`rag index` first).

    python eval/bench_exit.py [--runs 200] [--question "..."]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time

from rag.runtime import cpu_flags_line

QUESTIONS = ("تماس پوتین و ترامپ چقدر طول کشید؟", "What did Araghchi tell Kaja Kallas?", "ما هي عاصمة عمان؟",
             "اوشاکوف چه سمتی دارد؟")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--question", help="ask only this (default: four questions in turn, answered and abstained)")
    args = p.parse_args()
    statuses: collections.Counter[int] = collections.Counter()
    no_answer = 0
    seconds = []
    for n in range(args.runs):
        q = args.question or QUESTIONS[n % len(QUESTIONS)]
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "rag.cli", "ask", q, "--json"], capture_output=True, text=True)
        seconds.append(time.perf_counter() - t0)
        statuses[run.returncode] += 1
        try:
            json.loads(run.stdout)
        except ValueError:
            no_answer += 1
        if run.returncode != 0:
            print(f"run {n + 1}: exit status {run.returncode}; stderr tail: {run.stderr[-300:]!r}", file=sys.stderr)
        if (n + 1) % 10 == 0:
            print(f"{n + 1}/{args.runs} runs: {dict(statuses)}", file=sys.stderr)
    print(cpu_flags_line())
    print("| runs | exit 0 | other exit statuses | runs without a JSON answer | median s a run |")
    print("|---|---|---|---|---|")
    others = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()) if k != 0) or "none"
    print(f"| {args.runs} | {statuses[0]} | {others} | {no_answer} | {statistics.median(seconds):.1f} |")
    return 0 if statuses[0] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
