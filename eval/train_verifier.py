"""Train the verifier (rag/verifier.py): a cross-encoder made of EmbeddingGemma, low-rank adapters and a head.

Pairs (question, sentence) from the SQuAD-format sets in ../shared/data: the sentence
(rag.text.sentences) that holds a gold answer is a positive, three other sentences of the
same paragraph are negatives (the near-misses that matter: same subject, not the fact).
Trained on xquad_ar, xquad.en (English questions over the parallel Arabic paragraphs)
and mlqa_ar_dev, all CC BY-SA; PersianQA and ParsiNLU are kept out, to measure on.
--persian (tried on 2026-12-06, not shipped: see the README) adds the even-numbered
articles of PersianQA, whose unanswerable questions give three negatives each (the
sentences of their paragraph that share most words with them: the subject is there, the
fact is not); the odd ones are then measured with eval/fit_verifier.py --persian-half.

Adapters of rank 8 on the seven projections of the top 8 layers, a linear head on the
mean of the last layer, one epoch of binary cross-entropy (positives weighted 2), AdamW.
About 20 minutes on 2 CPU cores in bfloat16 (AVX-512 BF16), a minute on a GPU. Writes
rag/verifier.npz (float16 adapters, the head, the base weights' sha256) and, with
--eval, PersianQA's pair scores (as the removed eval/bench_verifier.py checked them: docs/decisions.md).

    python eval/train_verifier.py [--data ../shared/data] [--out rag/verifier.npz] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.evaluation.bench import PERSIAN, answer_sentences, persian_half
from rag.models import ensure_model, weights_hash
from rag.runtime import cpu_flags_line
from rag.text import tokens
from rag.verifier import ATTENTION, FEED_FORWARD, MAX_TOKENS, QUERY_PROMPT, TEXT_PROMPT

ROOT = Path(__file__).resolve().parent.parent

TRAIN = {"xquad_ar": "qa/xquad_ar/xquad.ar.json", "mlqa_ar": "qa/mlqa_ar_dev/MLQA-dev-context-ar-question-ar.json"}
EN = "qa/xquad_ar/xquad.en.json"  # questions in English; answers and sentences from the Arabic parallel
TOP, RANK, ALPHA, NEGATIVES, BATCH = 8, 8, 16, 3, 16


def pairs(data: Path, rng: random.Random, persian: bool = False) -> list[tuple[str, str, float]]:
    out = []

    def add(question, context, answers):
        sents, holds = answer_sentences(context, answers)
        others = [k for k in range(len(sents)) if k not in holds]
        rng.shuffle(others)
        out.extend((question, sents[k], 1.0) for k in holds)
        out.extend((question, sents[k], 0.0) for k in others[:NEGATIVES])

    arabic_sets = {name: json.loads((data / rel).read_text("utf-8"))["data"] for name, rel in TRAIN.items()}
    english = json.loads((data / EN).read_text("utf-8"))["data"]
    for name in ("xquad_ar", "xquad_en", "mlqa_ar"):
        if name == "xquad_en":
            for art_ar, art_en in zip(arabic_sets["xquad_ar"], english, strict=True):
                for p_ar, p_en in zip(art_ar["paragraphs"], art_en["paragraphs"], strict=True):
                    arabic = {q["id"]: q for q in p_ar["qas"]}
                    for q in p_en["qas"]:
                        if q["id"] in arabic and arabic[q["id"]]["answers"]:
                            add(q["question"], p_ar["context"], arabic[q["id"]]["answers"])
            continue
        for art in arabic_sets[name]:
            for par in art["paragraphs"]:
                for q in par["qas"]:
                    if q["answers"]:
                        add(q["question"], par["context"], q["answers"])
    if persian:  # PersianQA's even articles: its answerable questions as above, and its unanswerable ones
        used = persian_half(data, held_out=False)  # the odd ones are kept out, to measure on
        for a, art in enumerate(json.loads((data / PERSIAN).read_text("utf-8"))["data"]):
            if a not in used:
                continue
            for par in art["paragraphs"]:
                for q in par["qas"]:
                    if q["answers"] and not q.get("is_impossible"):
                        add(q["question"], par["context"], q["answers"])
                    else:  # no sentence states it: the ones sharing most words with it are negatives
                        sents, _ = answer_sentences(par["context"], [])
                        words = set(tokens(q["question"]))
                        near = sorted(range(len(sents)), key=lambda k: -len(words & set(tokens(sents[k]))))
                        out.extend((q["question"], sents[k], 0.0) for k in near[:NEGATIVES])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "rag" / "verifier.npz")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--persian", action="store_true", help="train on PersianQA's even articles too (not shipped)")
    args = ap.parse_args()
    if not (args.data / TRAIN["xquad_ar"]).exists():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2

    import torch
    from torch import nn
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    settings = Settings.from_env()
    folder = ensure_model(settings.model, settings.models_dir)
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), dtype=torch.bfloat16).to(args.device)
    for p in model.parameters():
        p.requires_grad_(False)

    class LoRA(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.A = nn.Parameter(torch.randn(RANK, base.in_features) / math.sqrt(base.in_features))
            self.B = nn.Parameter(torch.zeros(base.out_features, RANK))

        def forward(self, x):
            return self.base(x) + ((x.float() @ self.A.T) @ self.B.T * (ALPHA / RANK)).to(x.dtype)

    adapters = {}
    for li in range(len(model.layers) - TOP, len(model.layers)):
        for parent, names in ((model.layers[li].self_attn, ATTENTION), (model.layers[li].mlp, FEED_FORWARD)):
            for name in names:
                    adapters[f"{li}.{name}"] = lora = LoRA(getattr(parent, name)).to(args.device)
                    setattr(parent, name, lora)
    head = nn.Linear(model.config.hidden_size, 1).to(args.device)
    opt = torch.optim.AdamW([{"params": [p for a in adapters.values() for p in (a.A, a.B)], "lr": 3e-4},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.0)

    data = pairs(args.data, rng, persian=args.persian)
    rng = random.Random(args.seed)
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]) + len(data[i][1]) + rng.random() * 40)
    batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 30) * max(0.05, 1 - s / len(batches)))
    print(cpu_flags_line())
    print(f"{len(data)} pairs ({sum(y for _, _, y in data):.0f} positive), {len(batches)} steps on {args.device}")
    model.train()
    t0, avg = time.time(), 0.0
    for step, b in enumerate(batches):
        enc = tok([QUERY_PROMPT + data[i][0] for i in b], [TEXT_PROMPT + data[i][1] for i in b],
                  truncation="only_second", max_length=MAX_TOKENS, padding=True, return_tensors="pt").to(args.device)
        h = model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        logits = head((h * mask).sum(1) / mask.sum(1)).squeeze(-1)
        y = torch.tensor([data[i][2] for i in b], device=args.device)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(2.0, device=args.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        avg = 0.98 * avg + 0.02 * loss.item()
        if step % 50 == 0 or step == len(batches) - 1:
            print(f"step {step + 1}/{len(batches)}  loss {avg / (1 - 0.98 ** (step + 1)):.3f}  {time.time() - t0:.0f} s", flush=True)
    out = {"base_sha256": np.array(weights_hash(folder)), "rank": np.array(RANK), "alpha": np.array(ALPHA),
           "head.weight": head.weight.detach().float().cpu().numpy(), "head.bias": head.bias.detach().float().cpu().numpy()}
    for key, a in adapters.items():
        out[f"{key}.A"] = a.A.detach().float().cpu().numpy().astype(np.float16)
        out[f"{key}.B"] = a.B.detach().float().cpu().numpy().astype(np.float16)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
