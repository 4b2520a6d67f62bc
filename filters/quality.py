"""Heuristic quality rules: Gopher quality, Gopher repetition, C4, FineWeb.

Decisions and reasons match datatrove 0.10's filters at the same thresholds (checked by
tests/test_filters_quality.py on real documents); the speed comes from tokenizing once per
document and batch, counting n-grams on tuples in C, and skipping work whose outcome is already
known from a cheap bound (explained at each place).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from operator import itemgetter


from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

from curate.filters.base import TextRule, Verdict
from curate.filters.config import C4Config, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig
from curate.filters.words import sentence_count

# A word is a "symbol" when every character is punctuation: stripping the punctuation set from
# both ends leaves nothing exactly then (str.strip treats its argument as a set of characters).
_PUNCT_CHARS = "".join(PUNCTUATION_SET)


def _first_dup_stats(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, characters in the repeats), first occurrences not counted."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


class GopherQuality(TextRule):
    name = "gopher_quality"
    namespace = "gopher_quality"
    reason_namespaces = ("gopher_quality",)

    def __init__(self, cfg: GopherQualityConfig):
        super().__init__(cfg.language, cfg.default_language)
        self.cfg = cfg
        self.stop_words = {lang: frozenset(words) for lang, words in cfg.stop_words.items()}

    def check(self, text: str, words: Callable[[], list[str]], lang: str) -> Verdict:
        c = self.cfg
        all_words = words()
        n_words = len(all_words)
        content_words = [w for w in all_words if w.strip(_PUNCT_CHARS)]
        n_content = len(content_words)
        if c.min_doc_words and n_content < c.min_doc_words:
            return "short_doc", None
        if c.max_doc_words and n_content > c.max_doc_words:
            return "long_doc", None
        avg_len = sum(map(len, content_words)) / n_content if n_content else float("nan")
        if c.min_avg_word_length and avg_len < c.min_avg_word_length:
            return "below_avg_threshold", None
        if c.max_avg_word_length and avg_len > c.max_avg_word_length:
            return "above_avg_threshold", None
        if c.max_symbol_word_ratio and text.count("#") / n_words > c.max_symbol_word_ratio:
            return "too_many_hashes", None
        if c.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
            return "too_many_ellipsis", None
        lines = text.splitlines()
        if c.max_bullet_lines_ratio:
            bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
            if bullets / len(lines) > c.max_bullet_lines_ratio:
                return "too_many_bullets", None
        if c.max_ellipsis_lines_ratio:
            ellipsis = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if ellipsis / len(lines) > c.max_ellipsis_lines_ratio:
                return "too_many_end_ellipsis", None
        if c.min_alpha_words_ratio:
            alpha = sum(1 for w in all_words if any(map(str.isalpha, w)))
            if alpha / n_words < c.min_alpha_words_ratio:
                return "below_alpha_threshold", None
        stop_words = self.stop_words.get(lang)
        if c.min_stop_words and stop_words is not None and len(stop_words.intersection(all_words)) < c.min_stop_words:
            return "enough_stop_words", None  # datatrove's name for "not enough stop words"
        return None, None


_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINE_SPLIT = re.compile("\n+")


class GopherRepetition(TextRule):
    name = "gopher_repetition"
    namespace = "gopher_repetition"
    reason_namespaces = ("gopher_repetition",)

    def __init__(self, cfg: GopherRepetitionConfig):
        super().__init__(cfg.language, cfg.default_language)
        self.cfg = cfg

    def check(self, text: str, words: Callable[[], list[str]], lang: str) -> Verdict:
        c = self.cfg
        if not text:
            return "empty", None
        n_chars = len(text)
        paragraphs = _PARAGRAPH_SPLIT.split(text.strip())
        dup_paras, dup_para_chars = _first_dup_stats(paragraphs)
        if c.dup_para_frac and dup_paras / len(paragraphs) > c.dup_para_frac:
            return "dup_para_frac", None
        if c.dup_para_char_frac and dup_para_chars / n_chars > c.dup_para_char_frac:
            return "dup_para_char_frac", None
        lines = _LINE_SPLIT.split(text)
        dup_lines, dup_line_chars = _first_dup_stats(lines)
        if c.dup_line_frac and dup_lines / len(lines) > c.dup_line_frac:
            return "dup_line_frac", None
        if c.dup_line_char_frac and dup_line_chars / n_chars > c.dup_line_char_frac:
            return "dup_line_char_frac", None
        all_words = words()
        for n, frac in c.top_n_grams.items():
            if len(all_words) < n:
                continue
            if _top_ngram_chars(all_words, n) / n_chars > frac:
                return f"top_{n}_gram", None
        if c.dup_n_grams:
            joined, offsets = _concat_offsets(all_words)
            for n, frac in c.dup_n_grams.items():
                if _dup_ngram_chars(joined, offsets, n) / n_chars > frac:
                    return f"duplicated_{n}_n_grams", None
        return None, None


def _top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram (space-joined length x count).

    Words never contain whitespace, so counting tuples is the same as counting space-joined
    strings; `max` keeps the first-seen n-gram among ties, as Counter.most_common(1) does.
    """
    counts = Counter(zip(*(words[i:] for i in range(n))))
    gram, count = max(counts.items(), key=itemgetter(1))
    return (sum(map(len, gram)) + n - 1) * count


def _concat_offsets(words: list[str]) -> tuple[str, list[int]]:
    offsets = [0]
    total = 0
    for w in words:
        total += len(w)
        offsets.append(total)
    return "".join(words), offsets


def _dup_ngram_chars(joined: str, offsets: list[int], n: int) -> int:
    """Characters in repeated n-grams, non-overlapping greedy scan (Gopher's definition).

    An n-gram's key is its words concatenated without separator (as in the reference
    implementation), taken as a slice of the concatenated text instead of a fresh join.
    """
    n_words = len(offsets) - 1
    seen: set[str] = set()
    repeated = 0
    i = 0
    last = n_words - n + 1
    while i < last:
        gram = joined[offsets[i] : offsets[i + n]]
        if gram in seen:
            repeated += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated


_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


class C4Quality(TextRule):
    """C4's page rules plus its line cleaning, which rewrites `text` of kept documents."""

    name = "c4"
    namespace = "c4"
    reason_namespaces = ("c4",)

    def __init__(self, cfg: C4Config):
        super().__init__(cfg.language, cfg.default_language)
        self.cfg = cfg

    def check(self, text: str, words: Callable[[], list[str]], lang: str) -> Verdict:
        c = self.cfg
        counters = self.counters
        if c.split_paragraph:
            lines = text.splitlines()
        else:
            from datatrove.utils.text import split_into_sentences

            lines = split_into_sentences(text, lang)
        kept: list[str] = []
        for line in lines:
            line = line.strip()
            line_words = line.split()
            if c.max_word_length != -1 and any(len(w) > c.max_word_length for w in line_words):
                counters["line_dropped:too_long_word"] += 1
                continue
            if c.remove_citations:
                line = _CITATION.sub("", line)
            if c.filter_no_terminal_punct and (not line.endswith(_END_PUNCTUATION) or line.endswith("...")):
                counters["line_dropped:no_terminal_punct"] += 1
                continue
            if len(line_words) < c.min_words_per_line:
                counters["line_dropped:too_few_words"] += 1
                continue
            lower = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in lower:
                return "lorem_ipsum", None
            if c.filter_javascript and "javascript" in lower:
                counters["line_dropped:javascript"] += 1
                continue
            if c.filter_curly_bracket and "{" in line:
                return "curly_bracket", None
            if c.filter_policy and any(p in lower for p in _POLICY):
                counters["line_dropped:policy"] += 1
                continue
            kept.append(line)
        if c.min_num_sentences != -1 and len(kept) < c.min_num_sentences:
            # Every kept line counts at least one sentence (even an empty one does in the
            # reference), so the sentence splitter only runs when the line count is too low.
            n_sentences = sum(sentence_count(line, lang) for line in kept) if c.split_paragraph else len(kept)
            if n_sentences < c.min_num_sentences:
                return "too_few_sentences", None
        counters["line_kept"] += len(kept)
        return None, ("\n" if c.split_paragraph else " ").join(kept).strip()


class FineWebQuality(TextRule):
    name = "fineweb"
    namespace = "fineweb"
    reason_namespaces = ("fineweb",)

    def __init__(self, cfg: FineWebConfig):
        super().__init__(cfg.language, cfg.default_language)
        self.cfg = cfg
        self.stop_chars = tuple(TERMINAL_PUNCTUATION)

    def check(self, text: str, words: Callable[[], list[str]], lang: str) -> Verdict:
        c = self.cfg
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return "empty", None
        n_lines = len(lines)
        ratio = sum(1 for line in lines if line.endswith(self.stop_chars)) / n_lines
        if ratio < c.line_punct_thr and not (ratio == 0 and c.line_punct_exclude_zero):
            return "line_punct_ratio", None
        if sum(1 for line in lines if len(line) <= c.short_line_length) / n_lines > c.short_line_thr:
            return "short_line_ratio", None
        if _first_dup_stats(lines)[1] / len(text.replace("\n", "")) > c.char_duplicates_ratio:
            return "char_dup_ratio", None
        newlines = text.count("\n")
        # The tokenizer splits on the same whitespace as str.split and never merges chunks, so
        # it yields at least as many words as whitespace chunks: if the ratio passes with the
        # chunk count it passes with the word count, and tokenizing can be skipped.
        if newlines / len(text.split()) <= c.new_line_ratio:
            return None, None
        if newlines / len(words()) > c.new_line_ratio:
            return "list_ratio", None
        return None, None
