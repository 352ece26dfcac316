"""Research (not shipped): can a trained answer verifier on EmbeddingGemma's token states tell
a sentence that answers a question from one that only shares its topic?

The off-topic turns the assistant still answers are near-misses: the person asked about is
in the article, the fact asked is not ("since which year is Lavrov foreign minister?").
The answerability model (rag/answerability.py) reads questions through similarity features;
this script tries a verifier that reads the question against each candidate sentence:

- `cross`: a small cross-attention head (question tokens attend to sentence tokens, one
  layer of width 128, ~0.3 M parameters, trained with torch) over the frozen token states
  the reader already uses (eval/bench_reader.py's cache);
- `joint`: a logistic probe on one joint pass of the embedder over "title: question | text:
  sentence" (the model's own attention then crosses the two), mean question tokens, mean
  sentence tokens and the pooled vector.

Pairs come from eval/bench_answerability.py's pool: each question's top-4 candidates of the
scorer (positive: the candidate holds a gold answer), PersianQA's unanswerable questions
and the out-of-corpus variants as negatives. Trained on every set but --held (xquad_ar and
xquad.en never train each other), reported on --held: pair AUC (answer sentence vs the other
candidates), question AUC (the best candidate's verifier score: answerable vs unanswerable,
answerable vs out of corpus), beside the answerability model refitted on the same training
sets. Then the `cross` verifier trained this way is applied to the dialogue set's first and
off-topic turns (eval/gold/dialogues.jsonl, read alone over the project's index): AUC of
first (answerable) vs off-topic, beside the shipped answerability margin.

    python eval/bench_verifier.py [--held persianqa] [--epochs 3] [--joint]
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from bench_answerability import (  # noqa: E402  # noqa: E402
    auc,
    features,
    fit_model,
    load_pool,
    pool_parser,
    scored_list,
    sentence_weights,
    training_set,
)
from bench_reader import TokenCache  # noqa: E402

from rag.runtime import cpu_flags_line  # noqa: E402

TOP = 4  # candidates per question, as many as the reader re-reads


def pairs_of(items, weights) -> list[tuple]:
    """(item number, question, sentence index, holds the answer, among the top TOP) per candidate kept."""
    out = []
    for k, it in enumerate(items):
        pos = {j: i for i, (j, _) in enumerate(it.refs)}
        sc = scored_list(it, weights)
        # out-of-corpus variants: their top 2 only (easy negatives, kept few)
        for _, j, _ in sc[: TOP if it.in_corpus else 2]:
            out.append((k, it.question, j, bool(it.labels[pos[j]]), True))
        if it.answerable:  # a positive the scorer ranked lower still teaches the verifier
            out += [(k, it.question, j, True, False) for _, j, _ in sc[TOP:8] if it.labels[pos[j]]]
    return out


def cross_verifier(epochs: int):
    """The cross-attention head (torch), its trainer and its scorer."""
    import torch
    from torch import nn

    torch.set_num_threads(2)

    class Head(nn.Module):
        def __init__(self, d_in=768, d=128, heads=4, drop=0.1):
            super().__init__()
            self.pq, self.ps = nn.Linear(d_in, d), nn.Linear(d_in, d)
            self.lq, self.ls = nn.LayerNorm(d), nn.LayerNorm(d)
            self.att = nn.MultiheadAttention(d, heads, dropout=drop, batch_first=True)
            self.l1, self.l2 = nn.LayerNorm(d + 1), nn.LayerNorm(d + 1)
            self.mlp = nn.Sequential(nn.Linear(d + 1, 2 * d), nn.GELU(), nn.Dropout(drop), nn.Linear(2 * d, d + 1))
            self.pool, self.out, self.drop = nn.Linear(d + 1, 1), nn.Linear(d + 1, 1), nn.Dropout(drop)

        def forward(self, q, qm, s, sm):
            best = torch.einsum("bid,bjd->bij", q, s).masked_fill(~sm[:, None, :], -1.0).max(-1).values[..., None]
            a, b = self.lq(self.pq(self.drop(q))), self.ls(self.ps(self.drop(s)))
            ctx, _ = self.att(a, b, b, key_padding_mask=~sm)
            x = self.l1(torch.cat([a + ctx, best], -1))
            x = self.l2(x + self.mlp(x))
            w = self.pool(x).squeeze(-1).masked_fill(~qm, -1e9).softmax(-1)
            return self.out((w[..., None] * x).sum(1)).squeeze(-1)

    def pad(arrs):
        n = max(len(a) for a in arrs)
        x, m = np.zeros((len(arrs), n, arrs[0].shape[1]), np.float32), np.zeros((len(arrs), n), bool)
        for i, a in enumerate(arrs):
            x[i, : len(a)], m[i, : len(a)] = a, True
        return torch.from_numpy(x), torch.from_numpy(m)

    def train(qs, ss, y, bs=64):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = Head()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        y = np.asarray(y, np.float32)
        steps = epochs * -(-len(y) // bs)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
        weight = torch.tensor((1 - y.mean()) / max(y.mean(), 1e-3))
        for _ in tqdm(range(epochs), desc="epochs", file=sys.stderr):
            model.train()
            order = rng.permutation(len(y))
            for b in range(0, len(y), bs):
                idx = order[b:b + bs]
                q, qm = pad([qs[i] for i in idx])
                s, sm = pad([ss[i] for i in idx])
                loss = nn.functional.binary_cross_entropy_with_logits(
                    model(q, qm, s, sm), torch.from_numpy(y[idx]), pos_weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return model

    @torch.no_grad()
    def score(model, qs, ss, bs=256):
        model.eval()
        out = [model(*pad(qs[b:b + bs]), *pad(ss[b:b + bs])).numpy() for b in range(0, len(qs), bs)]
        return np.concatenate(out) if out else np.zeros(0)

    return train, score


def question_table(name: str, items, test_pairs, scores) -> None:
    """Pair AUC and question AUCs of one verifier's scores on the held-out set."""
    y = np.array([p[3] for p in test_pairs])
    answerable = np.array([items[p[0]].answerable for p in test_pairs])
    best = defaultdict(lambda: -np.inf)
    for p, s in zip(test_pairs, scores, strict=True):
        best[p[0]] = max(best[p[0]], float(s))
    cells = [f"{auc(scores[answerable], y[answerable]):.3f}"]
    cells += question_aucs(items, best)
    print(f"| {name} | " + " | ".join(cells) + " |")


def question_aucs(items, score_of: dict) -> list[str]:
    ks = list(score_of)
    v = np.array([score_of[k] for k in ks])
    kind = np.array(["ans" if items[k].answerable else "imp" if items[k].in_corpus else "out" for k in ks])
    out = []
    for neg in ("imp", "out"):
        sel = (kind == "ans") | (kind == neg)
        out.append(f"{auc(v[sel], kind[sel] == 'ans'):.3f} ({(kind == neg).sum()})" if (kind == neg).any() else "—")
    return out


def joint_scores(embedder, train_pairs, test_pairs, index):
    """The logistic probe on joint passes (question as the document prompt's title)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tok = embedder.tokenizer
    head = len(tok.encode("title:").ids)

    def encode(pairs):
        texts = [(p[1], index.sentence_text(p[2])) for p in pairs]
        out = []
        for b in tqdm(range(0, len(texts), 256), desc="joint passes", file=sys.stderr):
            part = texts[b:b + 256]
            for (q, _), (vec, states) in zip(part, embedder._run([f"title: {q} | text: {s}" for q, s in part]),
                                             strict=True):
                mid = len(tok.encode(f"title: {q} |").ids)
                qs, ss = states[head:mid - 1], states[mid:len(states) - 1]
                out.append(np.concatenate([qs.mean(0), (ss if len(ss) else states[-2:-1]).mean(0), vec]))
        return np.array(out, np.float32)

    xtr, xte = encode(train_pairs), encode(test_pairs)
    scaler = StandardScaler().fit(xtr)
    lr = LogisticRegression(C=0.01, max_iter=2000, class_weight="balanced")
    lr.fit(scaler.transform(xtr), [p[3] for p in train_pairs])
    return lr.decision_function(scaler.transform(xte))


def dialogue_check(score, model) -> None:
    """The cross verifier (trained on the pool) on the dialogue set's first and off-topic turns."""
    from rag.answer import answer, retrieve_for_answer, score_sentences
    from rag.config import Settings
    from rag.engine import Engine

    settings = Settings.from_env()
    engine = Engine(settings).warm_up()
    rows = []
    for line in (ROOT / "eval" / "gold" / "dialogues.jsonl").read_text("utf-8").splitlines():
        for t in json.loads(line)["turns"]:
            if t["type"] not in ("first", "off-topic"):
                continue
            q = t["question"]
            shipped = answer(engine.index, engine.embedder, q, settings)
            vecs, toks = engine.embedder.embed_queries_with_tokens([q])
            hits = retrieve_for_answer(engine.index, q, vecs[0], settings)
            scored, _ = score_sentences(engine.index, hits, vecs[0], q, settings)
            sents = engine.embedder.document_tokens([engine.index.sentence_text(j) for _, j, _ in scored[:TOP]])
            v = score(model, [toks[0]] * len(sents), sents).max() if sents else -np.inf
            rows.append((t["type"] == "first", float(v), shipped.margin))
    y = np.array([r[0] for r in rows])
    print(f"\nDialogue set, {y.sum()} first turns (answerable) vs {(~y).sum()} off-topic turns, read alone: AUC "
          f"cross verifier {auc(np.array([r[1] for r in rows]), y):.3f}, shipped answerability margin "
          f"{auc(np.array([r[2] for r in rows]), y):.3f}")


def main() -> int:
    ap = pool_parser(__doc__)
    ap.add_argument("--held", default="persianqa", choices=["xquad_ar", "mlqa_ar", "persianqa", "parsinlu"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-wrong", type=float, default=0.05)
    ap.add_argument("--joint", action="store_true", help="also the joint-pass probe (~45 pairs/s to encode)")
    args = ap.parse_args()
    t0 = time.time()
    index, embedder, items = load_pool(args)
    banned = {"xquad_ar", "xquad_en"} if args.held == "xquad_ar" else {args.held}
    train_items = [it for it in items if it.set not in banned]
    weights = sentence_weights(train_items)
    pairs = pairs_of(items, weights)
    train_pairs = [p for p in pairs if items[p[0]].set not in banned]
    test_pairs = [p for p in pairs if items[p[0]].set == args.held and p[4]]
    cache = TokenCache(args.work / f"reader-tokens-{args.model}")
    cache.fill("query", sorted({p[1] for p in pairs}), lambda t: embedder.embed_queries_with_tokens(t)[1])
    cache.fill("document", sorted({index.sentence_text(p[2]) for p in pairs}), embedder.document_tokens)

    def states(ps):
        return [cache.get("query", p[1]) for p in ps], [cache.get("document", index.sentence_text(p[2])) for p in ps]

    print(cpu_flags_line())
    print(f"{len(train_pairs)} training pairs ({sum(p[3] for p in train_pairs)} holding an answer), "
          f"{len(test_pairs)} held-out pairs of {args.held}")
    train, score = cross_verifier(args.epochs)
    model = train(*states(train_pairs), [p[3] for p in train_pairs])
    print(f"\nHeld out: {args.held} (trained on the other sets; {time.time() - t0:.0f} s)\n")
    print("| verifier | pair AUC (answer sentence vs other candidates) | question AUC: answerable vs unanswerable "
          "(n) | answerable vs out of corpus (n) |")
    print("|---|---|---|---|")
    question_table(f"cross-attention head, {args.epochs} epochs", items, test_pairs, score(model, *states(test_pairs)))
    if args.joint:
        question_table("joint-pass logistic probe", items, test_pairs,
                       joint_scores(embedder, train_pairs, test_pairs, index))
    ab_model = fit_model(*training_set(index, train_items, weights), args.max_wrong)
    held = {k: float(ab_model.score(features(index, it, scored_list(it, weights))[0])[0])
            for k, it in enumerate(items) if it.set == args.held}
    print("| answerability model (refitted on the same sets) | — | " + " | ".join(question_aucs(items, held)) + " |")
    dialogue_check(score, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
