"""The real multilingual model on the seed corpus: cross-lingual answers, citations, abstention."""

import pytest

from rag.text import normalize

pytestmark = pytest.mark.model

FA_CALL, FA_G20, FA_GENEVA, FA_NY, AR = ("004_ef6e32c70ca40c0f", "003_d5051b75434b2ec2", "000_17121c09af8ce33f",
                                        "001_068be423bd4cb168", "002_27d2148a64835134")

CASES = [  # question, language pair, expected top document, fact that must be in the answer
    ("مدت تماس تلفنی پوتین و ترامپ چقدر بود؟", "fa→fa", FA_CALL, "۵۰ دقیقه"),
    ("كم استغرقت المكالمة الهاتفية بين بوتين وترامب؟", "ar→fa", FA_CALL, "۵۰ دقیقه"),
    ("How long did the phone call between Putin and Trump last?", "en→fa", FA_CALL, "۵۰ دقیقه"),
    ("ملاقات اوباما و پوتین در حاشیه اجلاس جی ۲۰ چقدر طول کشید؟", "fa→fa", FA_G20, "۹۰ دقیقه"),
    ("How many minutes did Obama and Putin meet on the sidelines of the G20?", "en→fa", FA_G20, "۹۰ دقیقه"),
    ("Who invited John Kerry to come to Geneva?", "en→fa", FA_GENEVA, "کاترین اشتون"),
    ("مع من بحث كيري في اتصال هاتفي جهود بناء تحالف دولي ضد التنظيم؟", "ar→ar", AR, "لافروف"),
    ("Who did Kerry phone about building an international coalition against the Islamic State?", "en→ar", AR, "لافروف"),
    ("برای نخستین بار پس از انقلاب ۵۷ یک وزیر خارجه آمریکا وارد کجا شد؟", "fa→fa", FA_NY, "اقامتگاه نماینده ایران"),
    ("روابط دیپلماتیک ایران و آمریکا چند سال است که قطع شده است؟", "fa→ar", AR, "34 عام"),
    ("از طرف ایران کدام معاونان وزیر خارجه به جلسه پیوستند؟", "fa→ar", AR, "عباس عرقجي"),
    ("کری در تماس تلفنی با کدام وزیر خارجه درباره ائتلاف بین‌المللی علیه داعش گفتگو کرد؟", "fa→ar", AR, "لافروف"),
    ("از طرف آمریکا چه کسانی بعداً به دیدار کری و ظریف پیوستند؟", "fa→ar", AR, "وليام بيرنز"),
    ("Which group did Kerry want Zarif to help bring back to the negotiating table in Yemen?", "en→fa", FA_NY, "حوثی"),
    # answered with the aide's words but not his name until the judge decided (the reader put
    # the sentence that paraphrases the question first)
    ("من هو مساعد الرئيس الروسي الذي تحدث عن المكالمة بين بوتين وترامب؟", "ar→fa", FA_CALL, "اوشاکوف"),
    ("اوشاکوف چه سمتی دارد؟", "fa→fa", FA_CALL, "دستیار رئیس جمهور روسیه"),  # abstained before the judge
]

# Known limitation, kept visible: articles 001 (Persian) and 002 (Arabic) report the same
# Kerry–Zarif meeting, and 000 the Geneva talks. Lexical evidence exists only within one
# language, so for these questions the first answer sentence comes from an article in the
# question's language although the fact is only in the other one. Of the eight Persian
# questions written about facts found only in the Arabic article, the five above pass and
# the first three below do not (two came in when the cosine-closest passage joined the
# answer pool, two more when passages began to be scored by their best sentence); the
# fourth is the English→Persian counterpart; the fifth joined them when the judge began to
# decide (the reader of before put the Arabic sentence first). All are answered, but their
# first sentence comes from the wrong article.
CONFUSABLE = [
    ("مهلت توافق هسته‌ای ایران و گروه ۵+۱ تا چه تاریخی است؟", "fa→ar", AR, "24 تشرين الثاني"),
    ("کری و ظریف در دیدار یکشنبه در هتلی در نیویورک درباره خطرات کدام تنظیم افراطی بحث کردند؟", "fa→ar", AR, "الدولة الاسلامية"),
    ("دیدار کری و ظریف در هتل نیویورک چقدر طول کشید؟", "fa→ar", AR, "ساعة"),
    ("کری و لاوروف قرار است در حاشیه کدام نشست دیدار کنند؟", "fa→ar", AR, "الجمعية العامة"),
    ("In which city did Kerry join his German, French and British counterparts for the talks with Zarif and Ashton?", "en→fa", FA_GENEVA, "ژنو"),
]

# Answerable, but the judge's decision abstains (kept visible): answered by the answerability
# model of before (it was abstained by the sentence scorer alone); Kallas is named in the
# Persian article, and the judge reads none of its sentences as saying what was discussed.
ABSTAINED = [
    ("What did Kallas discuss with Araghchi?", "en→fa", FA_CALL, "کالاس"),
]

OFF_TOPIC = [
    "Who won the football world cup in 2018?",
    "طرز تهیه قورمه سبزی چیست؟",
    "ما هي أفضل طريقة لزراعة الطماطم في الحديقة؟",
    "What is the boiling point of water at sea level?",
    # "how are you?": was answered «نظر شما» ("your opinion", a news site's comment-box
    # heading left in article 001) until sentences of under MIN_ANSWER_WORDS content
    # words stopped being answer candidates
    "كيف حالك؟",
]


@pytest.mark.parametrize(("question", "pair", "doc", "fact"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_cross_lingual_answers_cite_the_right_article(seed_engine, question, pair, doc, fact):
    ans = seed_engine.ask(question)
    assert not ans.abstained, (ans.evidence, ans.threshold)
    assert ans.pair == pair.replace("→", ">")  # the pair whose threshold decided
    assert ans.citations[0].source == f"corpus/{doc}.txt", ans.text
    assert normalize(fact) in normalize(ans.text), ans.text
    for c in ans.citations:  # every answer sentence is a verbatim span of its cited document
        assert seed_engine.index.documents[c.doc_id].text[c.start:c.end] == c.text


@pytest.mark.xfail(reason="same-language bias between two articles on one event (see CONFUSABLE)",
                   raises=AssertionError, strict=True)
@pytest.mark.parametrize(("question", "pair", "doc", "fact"), CONFUSABLE, ids=[f"{c[1]}-{i}" for i, c in enumerate(CONFUSABLE)])
def test_confusable_cross_lingual_questions(seed_engine, question, pair, doc, fact):
    test_cross_lingual_answers_cite_the_right_article(seed_engine, question, pair, doc, fact)


@pytest.mark.xfail(reason="answerable, but abstained (see ABSTAINED)", raises=AssertionError, strict=True)
@pytest.mark.parametrize(("question", "pair", "doc", "fact"), ABSTAINED, ids=[c[1] for c in ABSTAINED])
def test_answerable_but_abstained(seed_engine, question, pair, doc, fact):
    test_cross_lingual_answers_cite_the_right_article(seed_engine, question, pair, doc, fact)


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_abstain(seed_engine, question):
    ans = seed_engine.ask(question)
    assert seed_engine.index.abstain_threshold() is not None, "the index carries a calibrated threshold"
    assert ans.abstained, (ans.evidence, ans.threshold, ans.text)
    assert ans.citations == [] and ans.hits


def test_answer_modes_agree_on_a_clear_question(seed_engine):
    for mode in ("dense", "lexical", "hybrid"):
        ans = seed_engine.ask("مدت تماس تلفنی پوتین و ترامپ چقدر بود؟", mode=mode)
        assert ans.hits[0].passage.doc_id == next(
            d.id for d in seed_engine.index.documents.values() if d.source.endswith(f"{FA_CALL}.txt"))


def test_eight_threads_share_the_real_model_without_cross_talk(seed_engine):
    import psutil

    from tests.conftest import run_workers

    cases = [CASES[0], CASES[3], CASES[6], CASES[8]]
    errors, rss = [], [psutil.Process().memory_info().rss]

    def worker(n):
        for i in range(3):
            question, _, doc, fact = cases[(n + i) % len(cases)]
            ans = seed_engine.ask(question)
            if ans.question != question or ans.citations[0].source != f"corpus/{doc}.txt":
                errors.append((n, question, ans.text[:80]))
            rss.append(psutil.Process().memory_info().rss)

    run_workers(worker, 8, timeout=300)
    assert not errors
    assert len(rss) == 1 + 8 * 3
    assert max(rss) - rss[0] < 300 * 2**20


def test_bfloat16_embeddings_match_float32():
    # bfloat16 (RAG_DTYPE=bfloat16) is faster where the CPU computes it natively; vectors of
    # either kind must be interchangeable in one index
    from rag.config import Settings
    from rag.models import load_embedder

    texts = ["پوتین و ترامپ تلفنی گفت‌وگو کردند.", "التقى وزير الخارجية بنظيره الإيراني في فيينا."]
    f32 = load_embedder(Settings(dtype="float32"))
    bf16 = load_embedder(Settings(dtype="bfloat16"))
    assert bf16.dtype == "bfloat16" and f32.dtype == "float32"
    assert (f32.embed_documents(texts) * bf16.embed_documents(texts)).sum(1).min() > 0.999
    assert (f32.embed_queries(texts) * bf16.embed_queries(texts)).sum(1).min() > 0.999
