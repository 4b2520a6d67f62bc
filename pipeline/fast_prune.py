"""trafilatura's pruning XPaths, evaluated in Python: the same elements in the same order, in
about a fifth of the time.

Half of trafilatura's time on a page goes to a handful of XPaths that decide which sections to
cut (navigation, comments, share bars, ...). They test @id and @class with EXSLT regular
expressions (`re:test`), and libxml2 calls back into Python's `re` for every candidate element
and every test. Here each expression is one predicate over an element's attributes, run over
the same candidates with the same regular expressions (lxml's `re:test` is Python's
`re.search`), so the pruned tree, and therefore the text, is identical.

Only expressions whose source text is exactly the one a predicate was written for are replaced
(checked by hash): another trafilatura version keeps its own XPaths. `install` patches the
module's lists in place, process-wide, so it runs only in the extraction child process. The
equivalence is tested element by element on real pages and on generated attribute values.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable

from lxml import etree

log = logging.getLogger(__name__)

Element = etree._Element
_LITERAL = re.compile(r"'([^']*)'")
# Candidates of `.//*[self::div or self::item or self::list or self::p or self::section or self::span]`.
_BLOCKS = ("div", "item", "list", "p", "section", "span")


def _first(el: Element, a: str, b: str) -> str:
    """string(@a|@b): the value of whichever of the two comes first in the source, else ''."""
    va, vb = el.get(a), el.get(b)
    if va is None:
        return vb or ""
    if vb is None:
        return va
    for key in el.keys():
        if key == a:
            return va
        if key == b:
            return vb
    return va  # pragma: no cover -- both attributes exist, so one key matches


def _test(pattern: str) -> Callable[[str | None], bool]:
    """re:test(@x, pattern) on an attribute value (None: the attribute is absent, tested as '')."""
    search = re.compile(pattern).search
    on_empty = search("") is not None
    return lambda value: on_empty if not value else search(value) is not None


def _overall_0(lit: list[str]) -> Callable[[Element], bool]:
    consent, by_id, by_class = _test(lit[4]), _test(lit[5]), _test(lit[6])

    def test(el: Element) -> bool:
        get = el.get
        return (get("data-lp-replacement-content") is not None
                or "nav" in (get("role") or "").replace("N", "n")
                or "MostPopularStories" in (get("data-component") or "")
                or consent(_first(el, "id", "class")) or by_id(get("id")) or by_class(get("class")))
    return test


def _overall_1(lit: list[str]) -> Callable[[Element], bool]:
    hidden, by_id, by_class = _test(lit[2]), _test(lit[5]), _test(lit[6])

    def test(el: Element) -> bool:
        get = el.get
        style = get("style") or ""
        return (get("class") == lit[0] or _first(el, "id", "class").startswith(lit[1])
                or hidden(_first(el, "id", "style")) or lit[3] in style or lit[4] in style
                or by_id(get("id")) or by_class(get("class")) or get("aria-hidden") == lit[7])
    return test


def _comments(lit: list[str]) -> Callable[[Element], bool]:
    by_id, by_class = _test(lit[0]), _test(lit[1])
    return lambda el: by_id(el.get("id")) or by_class(el.get("class"))


def _comments_and_lists(lit: list[str]) -> Callable[[Element], bool]:
    by_id, by_class, list_id, list_class = _test(lit[0]), _test(lit[1]), _test(lit[2]), _test(lit[3])

    def test(el: Element) -> bool:
        get = el.get
        return ((by_id(get("id")) or by_class(get("class")))
                and (el.tag not in ("ol", "ul") or list_id(get("id")) or list_class(get("class"))))
    return test


def _raw_tree_0(lit: list[str]) -> Callable[[Element], bool]:
    by_id, by_class, keep_id, keep_class = _test(lit[0]), _test(lit[1]), _test(lit[2]), _test(lit[3])

    def test(el: Element) -> bool:
        get = el.get
        return ((by_id(get("id")) or by_class(get("class")))
                and (next(el.iterdescendants("h1"), None) is None or keep_id(get("id")) or keep_class(get("class"))))
    return test


def _contains_class(lit: list[str]) -> Callable[[Element], bool]:
    return lambda el: lit[0] in (el.get("class") or "")


def _teaser(lit: list[str]) -> Callable[[Element], bool]:
    return lambda el: lit[2] in (el.get("id") or "").replace(lit[0], lit[1]) or lit[5] in (el.get("class") or "").replace(lit[3], lit[4])


def _precision_1(lit: list[str]) -> Callable[[Element], bool]:
    bottom, link = _test(lit[0]), _test(lit[1])

    def test(el: Element) -> bool:
        first = _first(el, "id", "class")
        return bottom(first) or link(first) or lit[2] in (el.get("style") or "")
    return test


def _caption(lit: list[str]) -> Callable[[Element], bool]:
    return lambda el: lit[0] in (el.get("id") or "") or lit[1] in (el.get("class") or "")


# (list in trafilatura.xpaths, index, sha256 of the XPath's source text (first 16 hex digits),
#  candidate tags (None: every element), the predicate's builder from the XPath's string literals)
_KNOWN: list[tuple[str, int, str, tuple[str, ...] | None, Callable[[list[str]], Callable[[Element], bool]]]] = [
    ("OVERALL_DISCARD_XPATH", 0, "a837e58a1b1ea116", _BLOCKS, _overall_0),
    ("OVERALL_DISCARD_XPATH", 1, "c1d5b70b8cd03783", None, _overall_1),
    ("REMOVE_COMMENTS_XPATH", 0, "5d97216ca15d0558", ("div", "list", "section", "details"), _comments),
    ("REMOVE_COMMENTS_AND_LISTS_XPATH", 0, "9cc18d34e6e2d258", ("div", "list", "section", "details", "ol", "ul"), _comments_and_lists),
    ("RAW_TREE_PRUNE_XPATH", 0, "01e7c660fd6406f2", ("div", "section", "aside"), _raw_tree_0),
    ("RAW_TREE_PRUNE_XPATH", 1, "3c7afe92279543d5", ("div", "section", "aside"), _contains_class),
    ("TEASER_DISCARD_XPATH", 0, "ebb02f066626551d", _BLOCKS, _teaser),
    ("PRECISION_DISCARD_XPATH", 1, "53d31ea1df47920a", _BLOCKS, _precision_1),
    ("DISCARD_IMAGE_ELEMENTS", 0, "cb1ab981e44913f7", _BLOCKS, _caption),
]


class PrunePredicate:
    """Callable like the XPath it replaces: `expr(tree)` -> matching descendants, document order."""

    def __init__(self, original: etree.XPath, tags: tuple[str, ...] | None,
                 build: Callable[[list[str]], Callable[[Element], bool]]) -> None:
        self.original = original
        self.path = original.path
        self.tags = tags
        self.test = build(_LITERAL.findall(original.path))

    def __call__(self, tree: Element) -> list[Element]:
        # lxml walks the tree in C; an XPath pre-selecting candidates by attribute measured slower.
        candidates = tree.iterdescendants(*self.tags) if self.tags else tree.iterdescendants(etree.Element)
        test = self.test
        return [el for el in candidates if test(el)]


def _digest(expr: object) -> str | None:
    path = getattr(expr, "path", None)
    return hashlib.sha256(path.encode()).hexdigest()[:16] if isinstance(path, str) else None


def predicates() -> list[tuple[str, int, PrunePredicate]]:
    """Every replacement for this trafilatura, or none if any known XPath differs (another version)."""
    from trafilatura import xpaths

    found = []
    for name, index, digest, tags, build in _KNOWN:
        exprs = getattr(xpaths, name, None)
        if not isinstance(exprs, list) or index >= len(exprs) or _digest(exprs[index]) != digest:
            return []
        found.append((name, index, PrunePredicate(exprs[index], tags, build)))
    return found


def install() -> bool:
    """Replace trafilatura's pruning XPaths in this process; False (nothing changed) if they are
    not the ones the predicates were written for."""
    from trafilatura import xpaths

    found = predicates()
    if not found:
        log.warning("trafilatura's pruning XPaths are not the known ones: extraction keeps them (slower, same output)")
        return False
    for name, index, pred in found:
        getattr(xpaths, name)[index] = pred
    return True
