"""Charset repair on real pages: a stray invalid byte in a UTF-8 page costs that one character
(decoded with replacement, as browsers do), and mojibake in the text is repaired and counted."""

from __future__ import annotations

import gzip
import re

import pytest

from curate.pipeline.config import ExtractConfig
from curate.pipeline.extract import Extract, decode_html, decode_html_counted

PAGE = "extraction/trafilatura/html/ahlen.de.reparaturcafe.html.gz"  # German, declares UTF-8, umlauts


@pytest.fixture(scope="module")
def page(shared_data) -> bytes:
    return gzip.open(shared_data / PAGE).read()


@pytest.fixture(scope="module")
def extract() -> Extract:
    return Extract(ExtractConfig())


def _insert_in_main_text(page: bytes, clean_text: str, stray: bytes) -> bytes:
    """The page with `stray` inserted in the middle of an ASCII run of its extracted main text."""
    for run in re.findall(r"[A-Za-z ,]{30,}", clean_text):
        at = page.find(run.encode())
        if at > 0:
            middle = at + len(run) // 2
            return page[:middle] + stray + page[middle:]
    raise AssertionError("no ASCII run of the main text found in the page bytes")


def test_one_stray_latin1_byte_costs_one_character(page, extract):
    clean_text, clean_charset, _ = extract.extract_one(page, None)
    assert clean_charset == "utf-8" and "ä" in clean_text and "ü" in clean_text
    dirty = _insert_in_main_text(page, clean_text, "é".encode("latin-1"))
    text, charset, reason = extract.extract_one(dirty, None)
    assert reason is None and charset == "utf-8"
    assert text.count("\ufffd") == 1
    assert text.replace("\ufffd", "", 1) == clean_text
    assert extract.stats()["invalid_utf8_pages"] == 1 and extract.stats()["invalid_utf8_sequences"] == 1


def test_the_same_holds_when_the_http_header_declares_utf8(page):
    dirty = page.replace("für".encode(), "f\xfcr".encode("latin-1"), 1)
    text, charset, invalid = decode_html_counted(dirty, "utf-8")
    assert charset == "utf-8" and invalid == 1
    assert text == page.decode("utf-8").replace("für", "f\ufffdr", 1)


def test_a_wrong_utf8_declaration_is_still_overruled(page):
    # Every non-ASCII character invalid as UTF-8: the page is not UTF-8 whatever it says.
    latin1 = page.decode("utf-8").encode("cp1252", "replace")
    text, charset = decode_html(latin1, "utf-8")
    assert charset != "utf-8" and "für" in text


def test_mojibake_is_repaired_and_counted(page, shared_data):
    stage = Extract(ExtractConfig())
    clean_text, _, _ = stage.extract_one(page, None)
    # The page's UTF-8 read as cp1252 and saved again as UTF-8: ä -> Ã¤ everywhere.
    mangled = page.decode("utf-8").encode("utf-8").decode("cp1252", "replace").encode("utf-8")
    text, _, _ = stage.extract_one(mangled, "utf-8")
    assert "Ã" not in text and text == clean_text
    assert stage.stats()["mojibake_repaired"] == 1
    off = Extract(ExtractConfig(repair_mojibake=False))
    assert "Ã" in off.extract_one(mangled, "utf-8")[0] and off.stats()["mojibake_repaired"] == 0


def test_clean_text_is_left_alone(page):
    stage = Extract(ExtractConfig())
    stage.extract_one(page, None)
    assert stage.stats()["mojibake_repaired"] == 0 and stage.stats()["invalid_utf8_pages"] == 0
