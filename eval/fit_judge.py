"""Fit the judge's one threshold (and how many candidates it reads), and measure it out of sample.

The judge (rag/verifier.py) reads the sentence scorer's best `top_k` candidates; the answer
leads with the one it gives the highest log-odds and abstains when that is under one
threshold, in every language pair. This script measures that decision against the data
the judge never decided before:

1. Near-misses (SQuAD 2.0's adversarial unanswerables, written against a paragraph that
   does not answer them): ParSQuAD (fa), SQuAD 2.0 dev (en) and PersianQA (fa), each
   question against every sentence of its own paragraph (ARCD, ar, answerable only, is
   read too). AUC of the best log-odds (answerable against not), the answer sentence read
   first, and the unanswerable ones abstained at the threshold.
2. The pipeline over a pool of the dev sets (a sample of xquad_ar, mlqa_ar_dev, persianqa,
   parsinlu_rc contexts with news distractors; xquad.en's English questions over the
   Arabic paragraphs): every question in corpus, out of corpus (its article removed) and
   as a near-miss (only its own paragraph removed), the scorer's best candidates read by
   the judge. Leave one set out: the threshold is the one that abstains on at most
   --max-wrong of the other sets' answerable questions; the held-out set is measured with
   it. The same questions with the shipped values are printed beside, for comparison.

--head also tries a new linear head on the judge's frozen pooled states (listwise, with a
"nothing here" option, trained on the near-miss sets of the other language), leave one
set out; it did not win (docs/decisions.md) and is not written.

Everything slow is cached in --work (the pool's index, its question variants, the judge's
states per question–sentence pair): a second run takes seconds, an interrupted one goes
on where it stopped. With --write-calibration the threshold fitted on every set and top_k
are stored in rag/calibration.json ("judge"), bound to rag/verifier.npz's sha256.

    python eval/fit_judge.py [--per-set 100] [--max-contexts 120] [--distractors 300]
                             [--max-wrong 0.05] [--top-k 6] [--head] [--write-calibration]
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag.answer import JUDGE_FEATURES, retrieve_for_answer
from rag.config import Settings
from rag.evaluation import bench
from rag.evaluation.bench import answer_sentences
from rag.fitting import fit_standardised, standardised_to_dict
from rag.runtime import cpu_flags_line
from rag.scorer import sentence_features
from rag.tuning import VERIFIER_WEIGHTS, file_sha256
from rag.verifier import load_verifier

NEAR_MISS = {  # name: (file, language, questions kept)
    "parsquad": ("qa/parsquad_fa/ParSQuAD-automatic-dev.json", "fa", 300),
    "squad2": ("qa/squad2_en/dev-v2.0-half.json", "en", 300),
    "persianqa": ("qa/persianqa/pqa_test.json", "fa", 300),
    "arcd": ("qa/arcd_train/arcd-train-disjoint.json", "ar", 150),
}
STORED = 8  # candidates kept per question variant (the judge reads at most top_k of them)
TOP_KS = (2, 3, 4, 6)


# ---------------------------------------------------------------- the judge's pooled states, cached
class States:
    """The judge's pooled last-layer states per (question, sentence), cached in --work by hash."""

    def __init__(self, folder: Path, settings: Settings):
        self.folder, self.settings = folder, settings
        folder.mkdir(parents=True, exist_ok=True)
        self.known: dict[str, np.ndarray] = {}
        for f in sorted(folder.glob("*.npz")):
            with np.load(f) as z:
                self.known.update(zip(z["keys"].tolist(), z["x"], strict=True))

    @staticmethod
    def key(q: str, s: str) -> str:
        return hashlib.sha1(f"{q}\x00{s}".encode()).hexdigest()[:16]

    def __call__(self, pairs: list[tuple[str, str]], desc: str) -> np.ndarray:
        todo = sorted({self.key(q, s): (q, s) for q, s in pairs if self.key(q, s) not in self.known}.items(),
                      key=lambda kv: len(kv[1][0]) + len(kv[1][1]))
        if todo:
            judge = load_verifier(self.settings)
            for i in tqdm(range(0, len(todo), 256), desc=f"the judge reads {desc}", file=sys.stderr):
                part = todo[i:i + 256]
                x = judge.pooled([p for _, p in part]).astype(np.float16)
                np.savez(self.folder / f"{time.time_ns()}.npz", keys=np.array([k for k, _ in part]), x=x)
                self.known.update(zip([k for k, _ in part], x, strict=True))
        if not pairs:
            return np.zeros((0, 768), np.float32)
        return np.stack([self.known[self.key(q, s)] for q, s in pairs]).astype(np.float32)


def shipped_head() -> tuple[np.ndarray, float]:
    with np.load(VERIFIER_WEIGHTS) as f:
        return f["head.weight"].astype(np.float32).reshape(-1), float(f["head.bias"].reshape(-1)[0])


# ---------------------------------------------------------------- 1. near-misses within their paragraph
def near_miss_sets(data: Path, work: Path) -> dict[str, list[dict]]:
    out = {}
    for name, (rel, lang, n) in NEAR_MISS.items():
        cached = work / f"judge-near-{name}-{n}.json"
        if cached.exists():
            out[name] = json.loads(cached.read_text("utf-8"))
            continue
        rows = []
        for a, art in enumerate(json.loads((data / rel).read_text("utf-8"))["data"]):
            for par in art["paragraphs"]:
                for q in par["qas"]:
                    impossible = bool(q.get("is_impossible")) or not q["answers"]
                    sents, holds = answer_sentences(par["context"], [] if impossible else q["answers"])
                    if sents and (impossible or holds):
                        rows.append({"set": name, "lang": lang, "question": q["question"], "sents": sents,
                                     "holds": sorted(holds), "answerable": not impossible, "article": a})
        random.Random(0).shuffle(rows)
        out[name] = rows[:n]
        cached.write_text(json.dumps(out[name], ensure_ascii=False), "utf-8")
    return out


# ---------------------------------------------------------------- 2. the pool's question variants
def pool_items(args) -> list[dict]:
    cached = args.work / f"judge-pool-{args.max_contexts}-{args.distractors}-{args.per_set}.json"
    if cached.exists():
        return json.loads(cached.read_text("utf-8"))
    index, embedder, settings = bench.pool_index(args)
    groups, english = bench.article_groups(args.data)
    _, qs = bench.load_sets(args.data, args.max_contexts)
    questions = [(q.set, q.question, q.answers, q.doc_id, not q.impossible) for q in qs]
    questions += [("xquad_en", q, ans, doc, True) for q, doc, ans, _ in english if doc in index.documents]
    by_set = defaultdict(list)
    for q in questions:
        by_set[q[0]].append(q)
    rng = random.Random(0)
    sample = [q for s in sorted(by_set) for q in rng.sample(by_set[s], min(args.per_set, len(by_set[s])))]
    qvecs = bench.query_vectors(args.work, embedder, [q[1] for q in sample])
    by_article = defaultdict(set)
    for doc_id, key in groups.items():
        by_article[key].add(doc_id)
    weights = index.tuning["sentence_weights"]
    rows = []
    for (name, question, answers, doc_id, answerable), qv in tqdm(list(zip(sample, qvecs, strict=True)),
                                                                  desc="question variants", file=sys.stderr):
        hits_all = retrieve_for_answer(index, question, qv, settings, k=40)
        gone = by_article.get(groups.get(doc_id), {doc_id})
        variants = [("in", hits_all[:10])]
        if answerable:
            variants.append(("out", [h for h in hits_all if h.passage.doc_id not in gone][:10]))
            if len(gone) > 1:
                variants.append(("near", [h for h in hits_all if h.passage.doc_id != doc_id][:10]))
        for kind, hits in variants:
            feats, refs = sentence_features(index, hits, qv, question, settings.answer_passages)
            item = bench.Item(name, name, question, bench.SET_LANG[name], answers, answerable and kind == "in",
                              kind == "in", feats, np.zeros(len(refs), bool), refs, hits, qv)
            scored = bench.scored_list(item, weights)
            labels = [bench.contains(index.sentence_text(j), answers) for _, j, _ in scored]
            if kind == "near" and any(labels):  # another paragraph also holds the answer: not a near-miss
                continue
            cos = index.sentence_vectors[[j for _, j, _ in scored]] @ qv if scored else np.zeros(1)
            rows.append({"set": name, "question": question, "kind": kind, "answerable": answerable and kind == "in",
                         "pair": bench.pair_of(index, item, scored), "max_cos": float(cos.max()),
                         "cands": [{"text": index.sentence_text(j), "label": bool(lab and answerable and kind == "in"),
                                    "score": s, "doc": h.passage.doc_id}
                                   for (s, j, h), lab in list(zip(scored, labels, strict=True))[:STORED]]})
    cached.write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    return rows


# ---------------------------------------------------------------- measuring
def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    return bench.auc(scores, positive) if positive.any() and (~positive).any() else float("nan")


def near_miss_table(sets: dict[str, list[dict]], states: States, threshold: float, head, old: dict) -> None:
    print(f"\n1. Near-misses: each question against the sentences of its own paragraph (the judge's threshold "
          f"{threshold:+.2f}; today's: {old['threshold']:+.2f} where the verifier judged, fa>fa ar>ar en>ar, "
          f"{old['veto']:+.2f} (the veto) elsewhere)\n")
    print("| set | questions (unanswerable) | AUC answerable vs not | answer sentence first | "
          "unanswerable abstained: today / judge | answerable abstained (wrong): today / judge |")
    print("|---|---|---|---|---|---|")
    w, b = head
    for name, rows in sets.items():
        X = states([(r["question"], s) for r in rows for s in r["sents"]], name)
        best, first, i = [], [], 0
        for r in rows:
            lg = X[i:i + len(r["sents"])] @ w + b
            i += len(r["sents"])
            best.append(float(lg.max()))
            if r["answerable"]:
                first.append(int(np.argmax(lg)) in r["holds"])
        best, ans = np.array(best), np.array([r["answerable"] for r in rows])
        lang = NEAR_MISS[name][1]
        today = old["threshold"] if f"{lang}>{lang}" in old["pairs"] else old["veto"]
        def un(t, best=best, ans=ans):
            return f"{np.mean(best[~ans] < t):.3f}" if (~ans).any() else "—"

        print(f"| {name} ({lang}>{lang}) | {len(rows)} ({int((~ans).sum())}) | {auc(best, ans):.3f} | "
              f"{np.mean(first):.3f} | {un(today)} / {un(threshold)} | "
              f"{np.mean(best[ans] < today):.3f} / {np.mean(best[ans] < threshold):.3f} |")


def layer_x(row: dict, X: np.ndarray, head, top_k: int) -> np.ndarray:
    """JUDGE_FEATURES per candidate: the judge's log-odds, and the shortlist's best cosine."""
    lg = X[:top_k] @ head[0] + head[1]
    return np.stack([lg, np.full(len(lg), row["max_cos"], np.float32)], 1)


def decide(row: dict, X: np.ndarray, head, threshold: float, top_k: int, layer=None) -> tuple[bool, bool, bool]:
    """(abstained, first sentence holds the answer, the answer (first + one passed, same document) does);
    `layer`: the decision's (mean, scale, coef, bias) over layer_x, else the judge's log-odds alone."""
    if not row["cands"]:
        return True, False, False
    lg = X[:top_k] @ head[0] + head[1]
    if layer is not None:
        mean, scale, coef, bias = layer
        lg = ((layer_x(row, X, head, top_k) - mean) / scale) @ coef + bias
    if lg.max() < threshold:
        return True, False, False
    y = np.array([c["label"] for c in row["cands"][:top_k]])
    order = np.argsort(-lg, kind="stable")
    second = [i for i in order[1:] if lg[i] >= threshold and row["cands"][i]["doc"] == row["cands"][order[0]]["doc"]][:1]
    return False, bool(y[order[0]]), bool(y[[order[0], *second]].any())


def pool_table(title: str, rows: list[dict], results: dict[int, tuple]) -> dict:
    print(f"\n{title}\n")
    print("| set | answerable abstained (wrong) | out of corpus abstained | near-miss (own paragraph out) abstained "
          "| unanswerable in corpus abstained | first sentence | whole answer |")
    print("|---|---|---|---|---|---|---|")
    macro = []
    for s in bench.REPORTED:
        rs = [(r, results[k]) for k, r in enumerate(rows) if r["set"] == s]
        groups = {"a": [x for r, x in rs if r["answerable"]], "o": [x for r, x in rs if r["kind"] == "out"],
                  "n": [x for r, x in rs if r["kind"] == "near"],
                  "u": [x for r, x in rs if r["kind"] == "in" and not r["answerable"]]}
        vals = [float(np.mean([x[i] for x in groups[g]])) if groups[g] else float("nan")
                for g, i in (("a", 0), ("o", 0), ("n", 0), ("u", 0), ("a", 1), ("a", 2))]
        f = "{:.3f}".format
        macro.append(vals)
        print(f"| {s} ({len(groups['a'])} answerable) | " + " | ".join("—" if v != v else f(v) for v in vals) + " |")
    mac = np.nanmean(np.array(macro), 0)
    print("| macro | " + " | ".join(f"{v:.3f}" for v in mac) + " |")
    return dict(zip(("wrong", "out", "near", "unanswerable", "first", "whole"), mac, strict=True))


def today(row: dict, X: np.ndarray, head, old: dict) -> tuple[bool, bool, bool]:
    """Today's decision where it can be replayed: the verifier judging in its pairs (score + weight ×
    log-odds, its threshold), the veto elsewhere; the answerability gate and the reader are not
    replayed (their features are not cached), so this is today's pipeline without them."""
    if not row["cands"]:
        return True, False, False
    lg = X[:6] @ head[0] + head[1]
    s = np.array([c["score"] for c in row["cands"][:6]])
    y = np.array([c["label"] for c in row["cands"][:6]])
    judging = row["pair"] in old["pairs"]
    if lg.max() < (old["threshold"] if judging else old["veto"]):
        return True, False, False
    order = np.argsort(-(s + old["weight"] * lg), kind="stable") if judging else np.arange(len(s))
    ok = (lambda i: lg[i] >= old["threshold"]) if judging else (lambda i: s[i] >= s[order[0]] - old["margin"])
    second = [i for i in order[1:] if ok(i) and row["cands"][i]["doc"] == row["cands"][order[0]]["doc"]][:1]
    return False, bool(y[order[0]]), bool(y[[order[0], *second]].any())


def fit_layer(rows: list[dict], Xs: list[np.ndarray], head, top_k: int, max_wrong: float, held: str | None = None):
    """The decision fitted on every set but `held` (xquad_ar and xquad_en never fit each other): a
    logistic layer over the best candidate's JUDGE_FEATURES (answerable question variants against
    the others), and the threshold under which at most `max_wrong` of those answerable ones fall."""
    banned = {"xquad_ar", "xquad_en"} if held in ("xquad_ar", "xquad_en") else {held}
    keep = [(r, X) for r, X in zip(rows, Xs, strict=True) if r["set"] not in banned and r["cands"]]
    best = np.stack([layer_x(r, X, head, top_k)[int(np.argmax(layer_x(r, X, head, top_k)[:, 0]))] for r, X in keep])
    y = np.array([r["answerable"] for r, _ in keep], float)
    layer = fit_standardised(best, y, C=1.0)
    scores = ((best - layer[0]) / layer[1]) @ layer[2] + layer[3]
    return layer, float(np.quantile(scores[y > 0], max_wrong))


def loso_threshold(rows: list[dict], Xs: list[np.ndarray], head, held: str, top_k: int, max_wrong: float) -> float:
    banned = {"xquad_ar", "xquad_en"} if held in ("xquad_ar", "xquad_en") else {held}
    best = [float((X[:top_k] @ head[0] + head[1]).max()) for r, X in zip(rows, Xs, strict=True)
            if r["answerable"] and r["set"] not in banned and r["cands"]]
    return float(np.quantile(best, max_wrong))


def main() -> int:
    ap = bench.pool_parser(__doc__, fit=True)
    ap.add_argument("--per-set", type=int, default=100, help="questions per dev set in the pool measurement")
    ap.add_argument("--max-contexts", type=int, default=120, help="contexts per dev set in the pool (0 = all)")
    ap.add_argument("--max-wrong", type=float, default=0.05, help="answerable questions abstained at most (other sets)")
    ap.add_argument("--top-k", type=int, default=6, help="candidates the judge reads (the table measures others)")
    ap.add_argument("--head", action="store_true", help="also try a new head on the frozen states (research)")
    ap.set_defaults(distractors=300)
    args = ap.parse_args()
    if not (args.data / bench.SETS["xquad_ar"]).exists():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    print(cpu_flags_line())
    settings = Settings.from_env(model=args.model)
    states = States(args.work / f"judge-states-{file_sha256(VERIFIER_WEIGHTS)[:12]}", settings)
    head = shipped_head()
    cal = json.loads((bench.ROOT / "rag" / "calibration.json").read_text("utf-8"))[args.model]
    old = cal.get("verifier") or {"threshold": 0.7, "weight": 1.4401, "pairs": ["ar>ar", "en>ar", "fa>fa"],
                                  "veto_threshold": -1.2}  # the values shipped before the judge (git show 372517d)
    old = {"threshold": old["threshold"], "weight": old["weight"], "pairs": old["pairs"], "veto": old["veto_threshold"],
           "margin": cal.get("sentence_margin", 1.25)}

    near = near_miss_sets(args.data, args.work)
    rows = pool_items(args)
    Xs = list(np.split(states([(r["question"], c["text"]) for r in rows for c in r["cands"][:6]], "the pool's candidates"),
                       np.cumsum([min(6, len(r["cands"])) for r in rows])[:-1]))

    print("\n2. The pool, leave one set out (the threshold: at most "
          f"{args.max_wrong:.0%} of the other sets' answerable questions abstained)")
    pool_table("Today's verifier and veto, replayed (without the answerability gate and the reader)",
               rows, {k: today(r, X, head, old) for k, (r, X) in enumerate(zip(rows, Xs, strict=True))})
    for top_k in TOP_KS:
        results, thresholds = {}, {}
        for held in bench.REPORTED:
            t = thresholds[held] = loso_threshold(rows, Xs, head, held, top_k, args.max_wrong)
            for k, (r, X) in enumerate(zip(rows, Xs, strict=True)):
                if r["set"] == held:
                    results[k] = decide(r, X, head, t, top_k)
        pool_table(f"The judge reading the best {top_k} (thresholds per held-out set: "
                                    + ", ".join(f"{s} {t:+.2f}" for s, t in thresholds.items()) + ")", rows, results)
    for top_k in TOP_KS:
        results, fitted = {}, {}
        for held in bench.REPORTED:
            layer, t = fit_layer(rows, Xs, head, top_k, args.max_wrong, held)
            fitted[held] = (layer, t)
            for k, (r, X) in enumerate(zip(rows, Xs, strict=True)):
                if r["set"] == held:
                    results[k] = decide(r, X, head, t, top_k, layer)
        pool_table(f"The decision: the judge reading the best {top_k} and the shortlist's best cosine (log-odds "
                   "coefficients per held-out set: " + ", ".join(f"{s} {lay[2][0]:.2f} / {lay[2][1]:.2f}"
                                                                 for s, (lay, _) in fitted.items()) + ")", rows, results)
    layer, threshold = fit_layer(rows, Xs, head, args.top_k, args.max_wrong)
    threshold = round(threshold, 4)
    all_best = [float((X[:args.top_k] @ head[0] + head[1]).max()) for r, X in zip(rows, Xs, strict=True)
                if r["answerable"] and r["cands"]]
    near_miss_table(near, states, round(float(np.quantile(all_best, args.max_wrong)), 4), head, old)
    if args.head:
        research_head(near, states, head)
    print(f"\nthe decision fitted on every set (top_k {args.top_k}): coef {layer[2].round(3).tolist()}, "
          f"threshold {threshold:+.4f}")
    if args.write_calibration:
        path = bench.write_tuning(args.model, {"judge": standardised_to_dict(JUDGE_FEATURES, *layer) | {
            "threshold": threshold, "top_k": args.top_k, "weights_sha256": file_sha256(VERIFIER_WEIGHTS),
            "source": (f"eval/fit_judge.py: a logistic layer over the judge's log-odds and the shortlist's best cosine "
                       f"(answerable question variants against those out of corpus, near-misses and unanswerable), and "
                       f"the log-odds under which at most {args.max_wrong:.0%} of the answerable questions abstain, over a pool of xquad_ar, mlqa_ar_dev, persianqa, parsinlu_rc (up to "
                       f"{args.max_contexts} contexts each, {args.distractors} news distractors per language) and "
                       f"xquad.en, {args.per_set} questions a set; the judge itself: eval/train_verifier.py")}})
        print(f"wrote {path}")
    return 0


def research_head(near: dict[str, list[dict]], states: States, head) -> None:
    """A new linear head on the frozen pooled states: listwise over a question's sentences with a
    null option (logit 0), L2 towards the shipped head; trained on the near-miss sets of the other
    languages, measured on the held-out one."""
    import torch

    def groups(rows):
        X = states([(r["question"], s) for r in rows for s in r["sents"]], "near-misses")
        out, i = [], 0
        for r in rows:
            y = np.zeros(len(r["sents"]), bool)
            y[r["holds"]] = True
            out.append((X[i:i + len(y)], y))
            i += len(y)
        return out

    data = {n: groups(rows) for n, rows in near.items()}
    print("\n3. A new head on the frozen states (research, not shipped)\n")
    print("| held out | trained on | head | AUC | answer sentence first |")
    print("|---|---|---|---|---|")
    for held in ("parsquad", "squad2"):
        train = [g for n, gs in data.items() if NEAR_MISS[n][1] != NEAR_MISS[held][1] for g in gs]
        X = torch.from_numpy(np.concatenate([g[0] for g in train]))
        Y = torch.from_numpy(np.concatenate([g[1] for g in train]))
        gid = torch.from_numpy(np.concatenate([np.full(len(g[1]), i) for i, g in enumerate(train)]))
        G = len(train)
        w0 = torch.from_numpy(head[0])
        w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(torch.tensor(head[1]))
        has = torch.zeros(G, dtype=torch.bool).index_put_((gid[Y],), torch.tensor(True))
        opt = torch.optim.Adam([w, b], lr=0.01)
        for _ in range(300):
            s = X @ w + b
            m = torch.zeros(G).scatter_reduce(0, gid, s, reduce="amax", include_self=True)
            e = torch.exp(s - m[gid])
            tot = torch.exp(-m).index_add(0, gid, e)
            num = torch.where(has, torch.zeros(G).index_add(0, gid, e * Y), torch.exp(-m))
            loss = -(torch.log(num + 1e-30) - torch.log(tot)).mean() + 1e-3 * ((w - w0) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        rows = near[held]
        for label, (W, B) in (("shipped", head), ("listwise + null", (w.detach().numpy(), float(b.detach())))):
            best = np.array([float((g[0] @ W + B).max()) for g in data[held]])
            ans = np.array([r["answerable"] for r in rows])
            first = np.mean([g[1][int(np.argmax(g[0] @ W + B))] for g, a in zip(data[held], ans, strict=True) if a])
            trained = ", ".join(n for n in data if NEAR_MISS[n][1] != NEAR_MISS[held][1])
            print(f"| {held} | {trained} | {label} | {auc(best, ans):.3f} | {first:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
