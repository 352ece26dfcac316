"""How fast the verifier (rag/verifier.py) loads and reads, per way of running it.

For each backend this CPU can run (OpenVINO int8 in float32 and, where bfloat16 is
native, bfloat16; torch in the same), in a fresh process: the time to load it (imports
included) and the median time of six question–sentence pairs, the number an answer reads.
Before that, `rag ask` for one question over this project's index, whole process, with
the verifier off and on its default (auto): wall time and peak memory.

    python eval/bench_verifier_speed.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from rag.embedding import native_bf16
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "مدت تماس تلفنی پوتین و ترامپ چقدر بود؟"
SENTENCES = ["تماس تلفنی ولادیمیر پوتین و دونالد ترامپ حدود ۵۰ دقیقه طول کشید و دو طرف درباره اوکراین گفتگو کردند."] * 6

ONE = """
import json, statistics, sys, time
t0 = time.perf_counter()
from pathlib import Path
from rag.config import Settings
from rag.models import ensure_model, weights_hash
from rag import verifier as vf
backend, precision, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = Settings()
folder = ensure_model(s.model, s.models_dir)
if backend == "openvino":
    v = vf.OpenVINOVerifier(folder, vf.export_dir(folder), precision)
else:
    v = vf.Verifier(folder, weights_hash(folder), precision)
load = time.perf_counter() - t0
question, sentences = json.loads(sys.argv[4])
v.score(question, sentences)
times = []
for _ in range(repeats):
    t = time.perf_counter(); v.score(question, sentences); times.append(time.perf_counter() - t)
print(json.dumps({"load": load, "pairs": statistics.median(times)}))
"""


def run_one(backend: str, precision: str, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", ONE, backend, precision, str(repeats),
                          json.dumps([QUESTION, SENTENCES], ensure_ascii=False)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_ask(verifier: str) -> tuple[float, float]:
    """`rag ask` in a fresh process: (wall seconds, peak memory in GB of the child)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag.cli", "ask", QUESTION], cwd=ROOT, capture_output=True, check=True,
                   env={**__import__("os").environ, "RAG_VERIFIER": verifier})
    wall = time.perf_counter() - t
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    from rag import verifier as vf
    from rag.config import Settings

    vf.prepare(Settings())  # the export, if it is missing (not timed)
    print(cpu_flags_line())
    # first: the peak memory of the children is the largest so far (off, then auto, which needs more)
    print("\n| `rag ask`, one question | wall | peak memory |\n|---|---|---|")
    for verifier in ("off", "auto"):
        wall, peak = run_ask(verifier)
        print(f"| RAG_VERIFIER={verifier} | {wall:.1f} s | {peak:.2f} GB |", flush=True)
    print("\n| backend | load (fresh process, imports included) | six pairs (median) |\n|---|---|---|")
    ways = [("openvino", "bf16"), ("openvino", "f32"), ("torch", "bfloat16"), ("torch", "float32")]
    for backend, precision in ways:
        if "bf" in precision and not native_bf16():
            continue
        r = run_one(backend, precision, args.repeats)
        print(f"| {backend} {precision} | {r['load']:.1f} s | {r['pairs'] * 1000:.0f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
