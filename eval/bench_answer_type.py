"""Benchmark: questions that ask for a count, and answers that state none, out of sample.

A question that asks how many or how much (rag.text.asks_for_count: "how many", "چند",
"كم") is answered by a sentence that states a quantity (rag.text.states_quantity: a digit
or a number word). This measures, on the dev sets (eval/bench_retrieval.py's pool: the
contexts of xquad_ar, mlqa_ar_dev, persianqa and parsinlu_rc, 1,000 + 1,000 news
distractors, xquad.en's questions over the Arabic contexts), what the rule would do to the
real pipeline (rag.answer.answer, the shipped settings), on every count question asked

- in corpus (answerable; PersianQA's unanswerable ones too), and
- out of corpus: with its own article's contexts removed from retrieval (it must abstain),

as eval/bench_answerability.py does. Nothing here is fitted: the rule has no parameters.

    python eval/bench_answer_type.py [--data ../shared/data] [--work ~/.cache/rag/bench] [--show]

Measured 2026-12-06 (AMD EPYC, avx512_bf16, no AMX; 302 count questions, 580 variants,
111 s) and not kept: abstaining when the answer's first sentence states no quantity would
have lost 11 of the 208 right first sentences (Arabic duals, "فريقين"; fractions, "ثلثي";
"مناطق شاسعة" for "how much") and caught 8 of the 125 answered variants that should
abstain, plus 4 wrong first sentences: news and encyclopaedia sentences nearly always
hold some number. Leading instead with the best candidate that states one: 200 right
first sentences instead of 208. See the README's "Tried and not kept".
"""

from __future__ import annotations

import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

import bench_answerability as ba  # noqa: E402
import bench_retrieval as br  # noqa: E402

import rag.answer as ra  # noqa: E402
from rag.runtime import cpu_flags_line  # noqa: E402
from rag.text import detect_lang, normalize  # noqa: E402

_TOKEN = re.compile(r"\w+", re.UNICODE)


# a question that asks for a count ("how many", "چند", "كم"): its answer states a quantity.
# Arabic "كم" normalises to Persian "کم" (little, less), so it counts only in an Arabic question;
# a question that asks why or how, not how many ("چرا … چند تا …"), is not one
_COUNT_Q = {
    "en": re.compile(r"\bhow\s+(?:many|much)\b"),
    "fa": re.compile(r"(?:^|\s)(?:چند|چه\s+تعداد)(?:\s|$|؟)|(?:^|\s)تعداد\b.*\b(?:چقدر|چیست|چند)\b"),
    "ar": re.compile(r"(?:^|\s)[وفبل]?کم(?:\s|$|؟)|(?:^|\s)ما\s+(?:هو\s+)?عدد\b"),
}
_NOT_COUNT_Q = re.compile(r"\b(?:why|چرا|چگونه|چطور|لماذا|کیف)\b")
_QUANTITY_WORDS = frozenset(normalize(w) for w in """
    one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens
    once twice thrice half several few couple single double triple
    first second third fourth fifth sixth seventh eighth ninth tenth
    یک دو سه چهار پنج شش هفت هشت نه ده یازده دوازده سیزده چهارده پانزده شانزده هفده
    هجده هیجده نوزده بیست سی چهل پنجاه شصت هفتاد هشتاد نود صد دویست سیصد چهارصد پانصد
    ششصد هفتصد هشتصد نهصد هزار میلیون میلیارد صدها هزاران دهها میلیونها چندین نیم
    بارها دوم سوم چهارم پنجم دومین سومین چهارمین پنجمین اولین نخستین یکبار
    واحد واحدة اثنان اثنين اثنتان اثنتين ثلاث ثلاثة أربع أربعة خمس خمسة ست ستة سبع سبعة
    ثمان ثماني ثمانية تسع تسعة عشر عشرة عشرون عشرين ثلاثون ثلاثين أربعون أربعين خمسون
    خمسين ستون ستين سبعون سبعين ثمانون ثمانين تسعون تسعين مئة مائة مئتين مئتان مئات ألف
    ألفين آلاف مليون ملايين مليار مليارات عشرات بضع بضعة عدة مرتين مرتان نصف الأول الثاني
    الثالث الرابع الخامس الأولى الثانية الثالثة
""".split())

def asks_for_count(question: str, lang: str | None = None) -> bool:
    """Whether a question asks how many or how much ("How many times …?", "چند نفر …؟",
    "كم مرة …؟"): its answer must state a quantity (see states_quantity)."""
    lang = lang or detect_lang(question)
    pattern = _COUNT_Q.get(lang)
    norm = " ".join(normalize(question).split())
    return bool(pattern and pattern.search(norm)) and not _NOT_COUNT_Q.search(norm)

def states_quantity(text: str) -> bool:
    """Whether a sentence states a quantity: a digit in any script, or a number word in
    English, Persian or Arabic ("twice", "سه بار", "ثلاث مرات", "الخمس"); Arabic's dual
    ("فريقين", two teams) is not seen."""
    norm = normalize(text)
    if re.search(r"\d", norm):
        return True
    for tok in _TOKEN.findall(norm):
        if tok in _QUANTITY_WORDS:
            return True
        for prefix in ("و", "ب", "ل", "ف", "ال", "وال", "بال"):  # Arabic clitics: وثلاثة, بخمسة, الخمس
            if tok.startswith(prefix) and tok[len(prefix):] in _QUANTITY_WORDS:
                return True
    return False


def questions(data: Path) -> list[tuple[str, str, tuple[str, ...], str, bool]]:
    """(set, question, gold answers, gold doc id, answerable) of every count question."""
    _, qs = br.load_sets(data)
    _, english = ba.article_groups(data)
    out = [(q.set, q.question, q.answers, q.doc_id, not q.impossible) for q in qs]
    out += [("xquad_en", q, ans, doc, True) for q, doc, ans, _ in english]
    return [x for x in out if asks_for_count(x[1], ba.SET_LANG[x[0]])]


def without(retrieve_for_answer, gone: set[str]):
    """rag.answer.retrieve_for_answer with the documents `gone` taken out of the corpus."""
    def restricted(index, text, vec, settings, mode=None, k=None, prefer=(), only_preferred=False):
        n = max(k or settings.k, settings.answer_passages, ra.DENSE_SCAN)
        hits = retrieve_for_answer(index, text, vec, settings, mode, n + 40, prefer, only_preferred)
        return [h for h in hits if h.passage.doc_id not in gone][:n]
    return restricted


def main() -> int:
    ap = ba.pool_parser(__doc__)
    ap.add_argument("--show", action="store_true", help="list the answers whose lead states no quantity")
    args = ap.parse_args()
    index, embedder, settings = ba.pool_index(args)
    groups, _ = ba.article_groups(args.data)
    by_article = defaultdict(set)
    for doc_id, key in groups.items():
        by_article[key].add(doc_id)
    qs = questions(args.data)
    print(f"{len(qs)} count questions", file=sys.stderr)

    original = ra.retrieve_for_answer
    rows = []
    t0 = time.time()
    try:
        for name, q, answers, doc_id, answerable in tqdm(qs, desc="count questions", file=sys.stderr):
            gone = by_article.get(groups.get(doc_id), {doc_id})
            for in_corpus in (True, False) if answerable else (True,):
                ra.retrieve_for_answer = original if in_corpus else without(original, gone)
                ans = ra.answer(index, embedder, q, settings)
                ordered = [j for _, j in ans.ordered]
                lead = index.sentence_text(ordered[0]) if ordered else ""
                first_q = next((j for j in ordered if states_quantity(index.sentence_text(j))), None)
                rows.append({"set": name, "answerable": answerable and in_corpus, "abstained": ans.abstained,
                             "lead_right": bool(lead) and br.contains(lead, answers),
                             "lead_quantity": bool(lead) and states_quantity(lead),
                             "q": q, "lead": lead, "answers": answers,
                             "promoted_right": first_q is not None and br.contains(index.sentence_text(first_q), answers)})
    finally:
        ra.retrieve_for_answer = original
    print(f"\n{cpu_flags_line()}; {len(rows)} question variants in {time.time() - t0:.0f} s\n")
    report(rows)
    if args.show:
        for r in rows:
            if not r["abstained"] and not r["lead_quantity"]:
                print(f"- {r['set']} {'answerable' if r['answerable'] else 'not'} right={r['lead_right']}: {r['q']} "
                      f"{r['answers'][:2]}\n    {r['lead'][:300]}")
    return 0


def report(rows: list[dict]) -> None:
    print("| set | answerable: answered / lead right | … rule: lead right lost / wrong lead now abstained "
          "| … promote: lead right | not answerable: answered | … rule: now abstained |")
    print("|---|---|---|---|---|---|")
    for name in ba.REPORTED + ["all"]:
        rs = [r for r in rows if name == "all" or r["set"] == name]
        a = [r for r in rs if r["answerable"] and not r["abstained"]]
        n_a = sum(r["answerable"] for r in rs)
        u = [r for r in rs if not r["answerable"]]
        ua = [r for r in u if not r["abstained"]]
        print(f"| {name} | {len(a)}/{n_a} / {sum(r['lead_right'] for r in a)} "
              f"| {sum(r['lead_right'] and not r['lead_quantity'] for r in a)} / "
              f"{sum(not r['lead_right'] and not r['lead_quantity'] for r in a)} "
              f"| {sum(r['promoted_right'] for r in a)} "
              f"| {len(ua)}/{len(u)} | {sum(not r['lead_quantity'] for r in ua)} |")


if __name__ == "__main__":
    sys.exit(main())
