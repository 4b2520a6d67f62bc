"""The one text normalisation of the classifiers: training, evaluation and scoring all call it.

fastText sees a document as whitespace-separated tokens, so the published recipes (fastText's own
text-classification tutorial, CCNet, the GPT-3/LLaMA reference classifiers) prepare text the
same way: lowercase, punctuation split off words (``end.`` -> ``end .``), every run of
whitespace and newlines one space, and only the first part of a long document kept. A model
scored on text prepared any other way than it was trained on loses accuracy silently, hence one
function.
"""

from __future__ import annotations

import re
from itertools import islice

DEFAULT_MAX_WORDS = 500

# A token is a run of word characters or one character that is neither word nor whitespace.
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# A token averages well under 16 characters, so cutting the raw text there first bounds the
# work on giant pages without changing which first `max_words` tokens are kept.
_CHARS_PER_WORD_BOUND = 16


def normalize(text: str | None, max_words: int = DEFAULT_MAX_WORDS) -> str:
    """`text` as the classifiers see it: lowercase, punctuation tokenised apart, whitespace
    collapsed to single spaces, at most `max_words` tokens (0 = no limit). None gives ""."""
    if not text:
        return ""
    if max_words > 0:
        tokens = islice(_TOKEN_RE.finditer(text[: max_words * _CHARS_PER_WORD_BOUND].lower()), max_words)
    else:
        tokens = _TOKEN_RE.finditer(text.lower())
    return " ".join(m.group() for m in tokens)
