"""Gopher / C4 / FineWeb rules: same keep/drop decisions, reasons and rewritten text as
datatrove's filters at the same thresholds, on real extracted pages and Wikipedia/CC texts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import schema
from curate.filters.config import C4Config, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig
from curate.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from curate.filters.words import splitter_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import filters_corpus  # noqa: E402


@pytest.fixture(scope="module")
def real_docs(shared_data: Path) -> list[dict]:
    pages = filters_corpus.extracted_pages(shared_data, limit=120)
    return pages + filters_corpus.jsonl_docs(shared_data, max_wiki=150)


def _batch(docs: list[dict], lang: str | None = None) -> pa.Table:
    return schema.from_rows([{"id": d["id"], "text": d["text"], "url": d["url"], "lang": lang} for d in docs])


def _datatrove_verdicts(dt_filter, docs: list[dict], prefix: str) -> tuple[list[str | None], list[str]]:
    from datatrove.data import Document

    reasons, texts = [], []
    for d in docs:
        doc = Document(text=d["text"], id=d["id"])
        res = dt_filter.filter(doc)
        if res is True:
            reasons.append(None)
        else:
            reasons.append(prefix + (res[1] if isinstance(res, tuple) else "dropped"))
        texts.append(doc.text)
    return reasons, texts


def _ours(stage, docs: list[dict]) -> tuple[list[str | None], list[str]]:
    out = stage(_batch(docs, lang="en"))
    return out.column(schema.DROP_REASON).to_pylist(), out.column(schema.TEXT).to_pylist()


def test_gopher_repetition_matches_datatrove(real_docs):
    from datatrove.pipeline.filters import GopherRepetitionFilter

    ours, _ = _ours(GopherRepetition(GopherRepetitionConfig(language="en")), real_docs)
    ref, _ = _datatrove_verdicts(GopherRepetitionFilter(), real_docs, "gopher_repetition:")
    assert ours == ref
    assert any(r is not None for r in ref) and any(r is None for r in ref)  # the data exercises both sides


def test_gopher_quality_matches_datatrove(real_docs):
    from datatrove.pipeline.filters import GopherQualityFilter

    ours, _ = _ours(GopherQuality(GopherQualityConfig(language="en")), real_docs)
    ref, _ = _datatrove_verdicts(GopherQualityFilter(), real_docs, "gopher_quality:")
    ref = [None if r is None else r.replace("gopher_quality:gopher_", "gopher_quality:") for r in ref]
    assert ours == ref
    assert len({r for r in ref if r}) >= 2


@pytest.mark.parametrize("terminal_punct", [True, False], ids=["c4-paper", "fineweb-recipe"])
def test_c4_matches_datatrove_including_line_cleaning(real_docs, terminal_punct):
    from datatrove.pipeline.filters import C4QualityFilter

    ours, our_texts = _ours(C4Quality(C4Config(language="en", filter_no_terminal_punct=terminal_punct)), real_docs)
    ref, ref_texts = _datatrove_verdicts(C4QualityFilter(filter_no_terminal_punct=terminal_punct), real_docs, "c4:")
    assert ours == ref
    kept = [i for i, r in enumerate(ref) if r is None]
    assert kept and all(our_texts[i] == ref_texts[i] for i in kept)
    assert any(our_texts[i] != real_docs[i]["text"] for i in kept)  # lines really were cleaned


def test_fineweb_matches_datatrove(real_docs):
    from datatrove.pipeline.filters import FineWebQualityFilter

    ours, _ = _ours(FineWebQuality(FineWebConfig(language="en")), real_docs)
    ref, _ = _datatrove_verdicts(FineWebQualityFilter(), real_docs, "fineweb:")
    assert ours == ref
    assert any(r is not None for r in ref)


def test_rules_only_see_active_rows_and_never_remove_rows():
    text = "word " * 10
    batch = schema.from_rows([{"text": text, "drop_reason": "lang:fr"}, {"text": text}])
    out = GopherQuality(GopherQualityConfig())(batch)
    assert out.num_rows == 2
    assert out.column(schema.DROP_REASON).to_pylist() == ["lang:fr", "gopher_quality:short_doc"]


def test_a_crashing_rule_marks_an_error_instead_of_failing_the_batch():
    # With the minimum word count disabled, an empty text divides by zero words.
    batch = schema.from_rows([{"text": ""}, {"text": "The cat and the dog sat with me. " * 20}])
    out = GopherQuality(GopherQualityConfig(min_doc_words=None, language="en"))(batch)
    assert out.column(schema.DROP_REASON).to_pylist() == ["error:gopher_quality:ZeroDivisionError", None]


def test_c4_rewrites_only_kept_rows():
    good = "\n".join(["This is a proper sentence with words." for _ in range(6)] + ["menu"])
    batch = schema.from_rows([{"text": good}, {"text": "lorem ipsum dolor sit amet.\n" + good}])
    out = C4Quality(C4Config(language="en"))(batch)
    assert out.column(schema.DROP_REASON).to_pylist() == [None, "c4:lorem_ipsum"]
    texts = out.column(schema.TEXT).to_pylist()
    assert "menu" not in texts[0] and texts[1].startswith("lorem ipsum")


def test_word_tokenizer_follows_the_detected_language():
    # German spaCy rules keep "z.B." together; the English tokenizer does not know it.
    assert "z.B." in splitter_for("de").words("Das ist z.B. ein Satz.")
    # A code without a tokenizer falls back to the multilingual one instead of failing.
    assert splitter_for("qqq").words("hello world") == ["hello", "world"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .,!-\n\t\xa0\u2003#…'\"1")), max_size=80))
def test_tokenizer_never_yields_fewer_words_than_whitespace_chunks(text):
    # FineWeb's list-ratio shortcut relies on this bound.
    assert len(splitter_for("en").words(text)) >= len(text.split())


def test_the_word_splitter_loads_spacy_without_torch_and_torch_still_imports_after():
    # thinc's torch probe is most of spaCy's import cost in every worker; the tokenizers never use it.
    probe = ("import sys\n"
             "from curate.filters.words import splitter_for\n"
             "words = splitter_for('en').words(\"It's e-mail, U.S.A.\")\n"
             "assert 'spacy' in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
             "import torch\n"
             "print(words, torch.ones(2).sum().item())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['It', \"'s\", 'e', '-', 'mail', ',', 'U.S.A.'] 2.0"
