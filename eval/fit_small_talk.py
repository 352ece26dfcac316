"""Fit how close to small talk a message must be to be taken for it ("thanks", "bye", "سلام").

After an answer, "thanks" or "bye" was read as a follow-up ("and then?" also says nothing
on its own) and answered with another cited sentence of the previous topic. A message
without a question mark whose query vector comes within a cosine threshold of one of
rag.small_talk.SMALL_TALK's, and closer to them than to any of rag.small_talk.ASKS ("more
details", "and Iran"), is
now answered by a fixed reply, with nothing retrieved, and leaves the conversation where
it was.

The threshold is fitted on the questions of the dev sets (xquad_ar, xquad.en,
mlqa_ar_dev, PersianQA, ParsiNLU: 4,427 real questions, none of which may be taken for
small talk): the highest closeness any of them reaches, plus --margin. It is measured on
what it was not fitted on: the questions of the two gold sets of this project
(eval/gold/seed_qa.jsonl, eval/gold/dialogues.jsonl), SHORT_QUESTIONS below ("Who?",
"thanks, and when did they meet?") and REQUESTS ("any more on this", "زمانش"), none of which
may be taken for small talk, and HELD_OUT, small-talk messages written after the prototypes and the threshold
were chosen (each should be). --write-calibration stores it in rag/calibration.json
(per embedding model: cosines are not comparable across models).

    python eval/fit_small_talk.py [--data ../shared/data] [--margin 0.05] [--write-calibration]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.engine import Engine
from rag.evaluation.bench import HELD_OUT, write_tuning
from rag.evaluation.gold import load_squad
from rag.runtime import cpu_flags_line
from rag.small_talk import SMALL_TALK, small_talk_vectors

ROOT = Path(__file__).resolve().parent.parent
DEV_SETS = (("xquad_ar", "qa/xquad_ar/xquad.ar.json"), ("xquad.en", "qa/xquad_ar/xquad.en.json"),
            ("mlqa_ar_dev", "qa/mlqa_ar_dev/MLQA-dev-context-ar-question-ar.json"),
            ("persianqa", "qa/persianqa/pqa_test.json"), ("parsinlu", "qa/parsinlu_rc/train.json"))

# short questions that ask something, and small talk with a question in it: none may be
# taken for small talk (written while the question-mark rule was chosen: see README)
SHORT_QUESTIONS = (
    "And Iran?", "و آمریکا؟", "وإيران؟", "Really?", "Why?", "How so?", "چرا؟", "كيف؟", "And then?", "More?",
    "Tell me more", "بیشتر توضیح بده", "المزيد؟", "What else?", "Who?", "Yes, and when?", "No?", "Is that all?",
    "همین؟", "کی؟", "Where?", "و بعدش چی شد؟", "ok, and where?", "thanks, and when did they meet?",
    "ممنون، کی دیدار کردند؟", "شكرا، ومتى التقيا؟", "Who is Lavrov?", "What is NATO?", "ظریف کیست؟",
    "and the Arabic article?",
)

# short requests without a question mark, none of which may be taken for small talk
# (written after SMALL_TALK, ASKS and the threshold were fixed)
REQUESTS = (
    "any more on this", "give me further information", "and its location", "what about Moscow's role",
    "the Farsi one", "answer in Persian", "spell it out", "cite it", "the earlier meeting then",
    "right, and the outcome", "fine, and the length of the call", "not that, the phone call", "open the article",
    "anyone else", "go deeper", "what was decided",
    "لطفا کامل‌تر بگو", "زمانش", "و آلمان", "از کجا آمده", "نه، دیدار نیویورک", "خب، و نتیجه‌اش", "متن کامل خبر",
    "باقی ماجرا", "نام هتل",
    "بتفصيل أكثر", "وألمانيا", "من أين هذا", "أكمل من فضلك", "نعم، والنتيجة", "طيب، ومدة الاتصال", "نص الخبر كاملا",
    "اسم الفندق",
)


def taken(texts, c: tuple[np.ndarray, np.ndarray], threshold: float) -> np.ndarray:
    """rag.small_talk.asks_nothing: close enough to small talk, closer to it than to ASKS, and
    no question mark."""
    talk, asks = c
    return (talk >= threshold) & (talk > asks) & np.array(["?" not in t and "؟" not in t for t in texts])


def closeness(embedder, texts) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the highest cosine with SMALL_TALK's vectors, and with ASKS's."""
    v = np.asarray(embedder.embed_queries(list(texts)), np.float32)
    talk, asks = small_talk_vectors(embedder)
    return (v @ talk.T).max(1), (v @ asks.T).max(1)


def gold_questions() -> dict[str, list[str]]:
    seed = [json.loads(x)["question"] for x in (ROOT / "eval" / "gold" / "seed_qa.jsonl").read_text("utf-8").splitlines()
            if x.strip()]
    dialogues = [t["question"] for x in (ROOT / "eval" / "gold" / "dialogues.jsonl").read_text("utf-8").splitlines()
                 if x.strip() for t in json.loads(x)["turns"]]
    return {"seed_qa": seed, "dialogues": dialogues}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--model", default="embeddinggemma-300m")
    ap.add_argument("--write-calibration", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    engine = Engine(Settings.from_env(model=args.model))
    embedder = engine.embedder
    dev = {name: [it.question for it in load_squad(args.data / rel)[1]] for name, rel in DEV_SETS}
    dev_close = {name: closeness(embedder, qs)[0] for name, qs in dev.items()}
    top = max(float(c.max()) for c in dev_close.values())
    threshold = round(float(np.ceil((top + args.margin) * 100) / 100), 2)

    print(cpu_flags_line())
    print(f"{len(SMALL_TALK)} small-talk prototypes; {time.time() - t0:.0f} s\n")
    print("| questions | n | highest closeness | 95th percentile | taken for small talk |")
    print("|---|---|---|---|---|")
    for name, c in dev_close.items():
        print(f"| {name} (fitted on) | {len(c)} | {c.max():.3f} | {np.quantile(c, .95):.3f} | {int((c >= threshold).sum())} |")
    held = gold_questions() | {"short questions": list(SHORT_QUESTIONS), "requests": list(REQUESTS)}
    for name, qs in held.items():
        c = closeness(embedder, qs)
        alone = int(((c[0] >= threshold) & np.array(["?" not in t and "؟" not in t for t in qs])).sum())
        print(f"| {name} (held out) | {len(qs)} | {c[0].max():.3f} | {np.quantile(c[0], .95):.3f} | "
              f"{int(taken(qs, c, threshold).sum())} (threshold alone: {int((c[0] >= threshold).sum())}; "
              f"with the question-mark rule: {alone}) |")
    print(f"\nthreshold: {threshold:.2f} (the dev sets' highest, {top:.3f}, + {args.margin:g})")
    for name, c in dev_close.items():
        i = int(np.argmax(c))
        print(f"- closest in {name}: {c[i]:.3f} {dev[name][i]}")
    c = closeness(embedder, HELD_OUT)
    ok = taken(HELD_OUT, c, threshold)
    print(f"\nheld-out small talk taken for it: {int(ok.sum())} of {len(HELD_OUT)}")
    for text, x, y, t in sorted(zip(HELD_OUT, *c, ok, strict=True), key=lambda t: t[1]):
        print(f"- {x:.3f} (asks {y:.3f}) {'yes' if t else 'NO '} {text}")
    c = closeness(embedder, REQUESTS)
    hit = taken(REQUESTS, c, threshold)
    print("\nrequests taken for small talk: " + (", ".join(t for t, h in zip(REQUESTS, hit, strict=True) if h) or "none"))

    if args.write_calibration:
        write_tuning(args.model, {"small_talk": {
            "threshold": threshold,
            "source": f"eval/fit_small_talk.py: the highest cosine of a dev-set question ({', '.join(dev)}: "
                      f"{sum(len(q) for q in dev.values())} questions) with rag.small_talk.SMALL_TALK, {top:.3f}, "
                      f"+ {args.margin:g}"}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
