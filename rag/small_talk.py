"""Small talk: a message that asks nothing ("thanks", "bye", "سلام", "شكرا", "👍").

After an answer, "thanks" says as little as "and then?", so a conversation would read it as
a follow-up and answer it with another cited sentence of the previous topic. A message
without a question mark whose query vector comes within a fitted cosine of one of
SMALL_TALK's, and closer to them than to any of ASKS ("more details", "and Iran"), is small
talk: rag.answer.answer gives it SMALL_TALK_REPLY with nothing retrieved, and
rag.conversation.reply leaves the conversation where it was. The threshold is fitted per
embedding model by eval/fit_small_talk.py (rag/calibration.json, "small_talk"); where none
is fitted, nothing is small talk.
"""

from __future__ import annotations

import functools

import numpy as np

from rag.embedding import Embedder
from rag.index import Index

# what a message that asks nothing looks like
SMALL_TALK = (
    "thanks", "thank you", "thanks a lot", "hello", "hi", "hey", "good morning", "ok", "okay", "great", "perfect",
    "nice", "cool", "got it", "I see", "goodbye", "bye", "see you",
    "سلام", "درود", "ممنون", "مرسی", "متشکرم", "سپاسگزارم", "خیلی ممنون", "دستت درد نکنه", "خداحافظ", "باشه", "عالی",
    "خوبه", "فهمیدم", "صبح بخیر", "چه خوب",
    "مرحبا", "أهلا", "السلام عليكم", "شكرا", "شكرا جزيلا", "مع السلامة", "وداعا", "حسنا", "ممتاز", "جيد",
    "فهمت", "صباح الخير", "تمام",
)
# … and what a short message that does ask something looks like ("more details", "and
# Iran", "when"): small talk must be closer to SMALL_TALK than to any of these
ASKS = (
    "tell me more", "more details", "continue", "go on", "summarize", "explain", "what about that", "the other one",
    "and Iran", "what else", "who", "when", "where", "why", "how",
    "بیشتر بگو", "جزئیات", "ادامه بده", "خلاصه کن", "توضیح بده", "آن یکی", "و ایران", "دیگر چه", "کی", "کجا", "چرا",
    "أخبرني المزيد", "التفاصيل", "تابع", "لخص", "اشرح", "الآخر", "وإيران", "ماذا أيضا", "متى", "أين", "لماذا",
)
SMALL_TALK_REPLY = {
    "fa": "این پیام پرسشی نیست. پرسشی دربارهٔ اسناد بپرسید.",
    "ar": "هذه الرسالة ليست سؤالًا. اطرح سؤالًا عن المستندات.",
    "en": "That is not a question. Ask a question about the documents.",
}


@functools.lru_cache(maxsize=4)
def small_talk_vectors(embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    """SMALL_TALK and ASKS embedded as questions (computed once per embedder)."""
    v = np.asarray(embedder.embed_queries(list(SMALL_TALK) + list(ASKS)), np.float32)
    return v[:len(SMALL_TALK)], v[len(SMALL_TALK):]


def small_talk_closeness(embedder: Embedder, q_vec: np.ndarray) -> tuple[float, float]:
    """The highest cosine of a question's vector with SMALL_TALK's, and with ASKS's."""
    talk, asks = small_talk_vectors(embedder)
    q = np.asarray(q_vec, np.float32)
    return float((talk @ q).max()), float((asks @ q).max())


def asks_nothing(index: Index, embedder: Embedder, question: str, q_vec: np.ndarray) -> bool:
    """Whether a message is small talk rather than a question: no question mark in it ("how
    so?", "Who?" and "thanks, and when did they meet?" ask something), its vector within the
    fitted cosine of SMALL_TALK's (never where none is fitted for the model: cosines differ
    by model), and closer to them than to any of ASKS ("more details", "and Iran")."""
    spec = index.tuning.get("small_talk")
    if spec is None or "?" in question or "؟" in question:
        return False
    talk, asks = small_talk_closeness(embedder, q_vec)
    return talk >= float(spec["threshold"]) and talk > asks
