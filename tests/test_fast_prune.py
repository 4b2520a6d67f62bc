"""trafilatura's pruning XPaths evaluated in Python (`extract.fast_prune`) select exactly the
elements the XPaths select, on the trees trafilatura really prunes and on generated ones, so the
extracted text is identical."""

from __future__ import annotations

import random

import pytest
import trafilatura
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree, html
from trafilatura import xpaths

from curate.config import parse_config
from curate.pipeline import fast_prune
from curate.pipeline.config import ExtractConfig
from curate.pipeline.extract import decode_html, trafilatura_kwargs
from curate.pipeline.resume import document_fingerprints
from warc_rows import read_raw

SETTINGS = trafilatura_kwargs(ExtractConfig())


@pytest.fixture(scope="module")
def real_pages(shared_data) -> list[str]:
    """A seeded sample of the real pages, decoded as the extraction child decodes them."""
    raw = read_raw(shared_data / "real-pages.warc.gz")
    pages = [decode_html(h, c)[0] for h, c in zip(raw.column("raw_html").to_pylist(), raw.column("charset").to_pylist()) if h]
    return random.Random(7).sample(pages, 80)


@pytest.fixture
def patched() -> list[tuple[str, int, fast_prune.PrunePredicate]]:
    """The replacements, installed for this test only (trafilatura's modules share the lists)."""
    found = fast_prune.predicates()
    saved = {name: list(getattr(xpaths, name)) for name, _, _ in found}
    yield found
    for name, exprs in saved.items():
        getattr(xpaths, name)[:] = exprs


def test_every_known_xpath_of_this_trafilatura_has_a_predicate():
    assert trafilatura.__version__ == "2.3.1"  # pinned in pyproject.toml; another version keeps its own XPaths
    assert len(fast_prune.predicates()) == 9


def test_on_real_pages_each_predicate_selects_what_its_xpath_selects_and_the_text_is_the_same(real_pages, patched):
    mismatches: list[str] = []
    calls = {f"{name}[{i}]": 0 for name, i, _ in patched}

    class Both:
        """Runs the XPath and the predicate on the very tree trafilatura prunes."""

        def __init__(self, key: str, pred: fast_prune.PrunePredicate) -> None:
            self.key, self.pred, self.path = key, pred, pred.path

        def __call__(self, tree):
            want, got = self.pred.original(tree), self.pred(tree)
            calls[self.key] += 1
            if got != want:
                mismatches.append(f"{self.key}: {len(got)} vs {len(want)} elements")
            return want

    stock = [trafilatura.extract(page, **SETTINGS) for page in real_pages]
    for name, i, pred in patched:
        getattr(xpaths, name)[i] = Both(f"{name}[{i}]", pred)
    checked = [trafilatura.extract(page, **SETTINGS) for page in real_pages]
    for name, i, pred in patched:
        getattr(xpaths, name)[i] = pred
    fast = [trafilatura.extract(page, **SETTINGS) for page in real_pages]
    assert mismatches == []
    assert all(n > 0 for key, n in calls.items() if "TEASER" not in key and "IMAGE" not in key), calls
    assert checked == stock
    assert fast == stock
    assert sum(1 for t in fast if t) >= 60


# Attribute values built from the expressions' own tokens, their near misses and case variants.
_FRAGMENTS = ["comment", "Comment", "commentary", "comol", "disqus_thread", "dsq-comments", "article-comments", "nav",
              "Nav", "navbar", "share", "share-", "shar", "social", "cookie", "footer", "ad-", " ad ", "-ad-", "widget",
              "reply-", "hidden", "hide-", " hidden", "display:none", "display: none", "bottom", "link", "border",
              "caption", "teaser", "Teaser", "mvp-post-add-box", "infinite-scroll", "elementor-share-buttons",
              "comments-title", "akismet", "MostPopularStories", "true", "x", " ", "-", "main", "content"]
_ATTRS = ["id", "class", "style", "role", "aria-hidden", "data-component", "data-lp-replacement-content"]
_TAGS = ["div", "item", "list", "p", "section", "span", "details", "ol", "ul", "aside", "h1", "header", "a"]

values = st.lists(st.sampled_from(_FRAGMENTS), min_size=0, max_size=3).map("".join)
attributes = st.lists(st.tuples(st.sampled_from(_ATTRS), values), max_size=4, unique_by=lambda kv: kv[0])
nodes = st.recursive(
    st.tuples(st.sampled_from(_TAGS), attributes, st.just([])),
    lambda kids: st.tuples(st.sampled_from(_TAGS), attributes, st.lists(kids, max_size=3)),
    max_leaves=12,
)


def _build(node, parent) -> None:
    tag, attrs, kids = node
    el = etree.SubElement(parent, tag)
    for key, value in attrs:  # in this order: the source order @id|@class depends on
        el.set(key, value)
    el.text = "text"
    for kid in kids:
        _build(kid, el)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(nodes, min_size=1, max_size=4))
def test_on_generated_trees_each_predicate_selects_what_its_xpath_selects(forest):
    body = html.Element("body")
    for node in forest:
        _build(node, body)
    for name, i, pred in fast_prune.predicates():
        assert pred(body) == pred.original(body), f"{name}[{i}] on {etree.tostring(body)!r}"


def test_another_trafilatura_keeps_its_own_xpaths(monkeypatch):
    changed = [etree.XPath(".//*[self::div][contains(@class, 'elsewhere')]"), *xpaths.OVERALL_DISCARD_XPATH[1:]]
    monkeypatch.setattr(xpaths, "OVERALL_DISCARD_XPATH", changed)
    assert fast_prune.predicates() == []
    assert fast_prune.install() is False
    assert xpaths.OVERALL_DISCARD_XPATH is changed and isinstance(changed[0], etree.XPath)


def test_the_switch_changes_no_fingerprint(tmp_path):
    base = {"input": {"paths": ["x.warc.gz"]}, "output": {"path": str(tmp_path)}}
    on = parse_config(base)
    off = parse_config({**base, "extract": {"fast_prune": False}})
    assert on.extract.fast_prune and not off.extract.fast_prune
    assert document_fingerprints(on) == document_fingerprints(off)
