"""Per-language word splitting, identical to datatrove's `load_word_tokenizer(lang).word_tokenize`.

Why not call datatrove directly: its spaCy tokenizer runs the full pipeline (with a
sentencizer) and opens a spaCy memory zone per call; we call the bare spaCy tokenizer and keep
its vocabulary between documents (see `WordSplitter.zone`): same tokens, about twice the speed. Words are also
cached per (language, text) so consecutive stages on the same batch (Gopher repetition, then
Gopher quality) tokenize each document once, as datatrove's lru_cache does for chained filters.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import lru_cache

# Language used when datatrove has no tokenizer for a code, or it needs a package we lack.
FALLBACK = "xx"
_CACHE_SIZE = 4096
_MAX_LEXEMES = 500_000


class WordSplitter:
    """Words of a text for one language (whitespace-only tokens dropped, each token stripped)."""

    def __init__(self, language: str):
        self.language = language
        self._nlp, self._split = _load(language)
        self._cache: OrderedDict[str, list[str]] = OrderedDict()

    @contextlib.contextmanager
    def zone(self) -> Iterator[None]:
        """Bound the spaCy vocabulary around a batch.

        datatrove opens a spaCy memory zone per call, which throws away every lexeme and makes
        spaCy rebuild common words for each document (a third of tokenizing time). Instead we
        keep the vocabulary across batches and start a fresh tokenizer once it grows past
        `_MAX_LEXEMES`, which bounds memory in long runs the same way. Tokens are identical.
        """
        yield
        if self._nlp is not None and len(self._nlp.vocab) > _MAX_LEXEMES:
            self._nlp, self._split = _load(self.language)

    def words(self, text: str) -> list[str]:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        words = self._split(text)
        self._cache[text] = words
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return words


def import_spacy_without_torch() -> None:
    """Import spaCy without letting thinc (spaCy's ML layer) import torch.

    thinc probes for torch at import time (`try: import torch`), which is two thirds of spaCy's
    import cost (~2 s of CPU per worker process); the blank tokenizers and the rule-based
    sentencizer used here never touch thinc's backends. A process that already has torch keeps
    it, and `import torch` works normally afterwards (only thinc believes it absent).
    """
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import spacy  # noqa: F401
    finally:
        del sys.modules["torch"]


def _load(language: str) -> tuple[object | None, Callable[[str], list[str]]]:
    from datatrove.utils.word_tokenizers import SpaCyTokenizer, WhitespaceTokenizer, load_word_tokenizer

    import_spacy_without_torch()

    tok = load_word_tokenizer(language) if language != FALLBACK else WhitespaceTokenizer()
    if isinstance(tok, WhitespaceTokenizer):
        tok = tok._spacy_xx
    if isinstance(tok, SpaCyTokenizer) and tok.config is None:
        import spacy

        nlp = spacy.blank(tok.language)
        tokenizer = nlp.tokenizer

        def split(text: str) -> list[str]:
            try:
                tokens = tokenizer(text)
            except Exception:
                if "IS_ALPHA" not in text:  # the one string spaCy chokes on, as datatrove handles it
                    raise
                tokens = tokenizer(text.replace("IS_ALPHA", ""))
            return [w for w in (t.text.strip() for t in tokens) if w]

        return nlp, split
    # Other tokenizers (jieba, Japanese, Thai...) keep datatrove's own implementation.
    tok.word_tokenize("probe")  # fail now (missing package) rather than inside a batch
    return None, tok.word_tokenize


@lru_cache(maxsize=None)
def splitter_for(language: str) -> WordSplitter:
    """One splitter per language per process; unknown languages fall back to spaCy `xx`."""
    try:
        return WordSplitter(language)
    except Exception:
        if language == FALLBACK:
            raise
        return splitter_for(FALLBACK)


def resolve_language(configured: str, row_lang: str | None, default: str) -> str:
    """Tokenizer language for a row: the configured code, or the row's detected language."""
    if configured != "auto":
        return configured
    return row_lang or default


@lru_cache(maxsize=None)
def _sentence_language(language: str) -> str:
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    import_spacy_without_torch()
    try:
        load_word_tokenizer(language).sent_tokenize("probe.")
        return language
    except Exception:
        return "en"  # spaCy's sentencizer is punctuation-based: a fair stand-in for any language


def sentence_count(text: str, language: str) -> int:
    """Sentences in `text` as datatrove's split_into_sentences counts them (C4's rule)."""
    from datatrove.utils.text import split_into_sentences

    return len(split_into_sentences(text, _sentence_language(language)))
