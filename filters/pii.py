"""PII redaction: e-mail, public IPv4/IPv6, phone numbers, payment cards -> typed placeholders.

Candidates come from cheap regular expressions and are then validated, so what only looks like
PII stays:

- phones: a run of 7-17 digits with phone separators is handed to Google's libphonenumber
  (`phonenumbers.PhoneNumberMatcher`), read in each configured default region in turn (numbers
  with +CC or 00CC in any); a phone label just before it ("Tel.", "Phone", "Fax", "Mobile",
  "Handy", ...) lowers the leniency to "possible", an identifier label ("customer", "order",
  "case", "invoice", "ISBN", "Kundennummer", "no.", "#", ...) without a phone label skips it;
  dates, dotted quads and binary nibbles are never phones;
- IPs: parsed with `ipaddress` as one span, IPv4-mapped IPv6 included (its IPv4 decides);
  IPv6 needs three or more groups and one of three or more hex digits, a shape code slices
  (`xs[::2]`, `a[1::2]`) and times never take, and a global one lies in 2000::/3; a dotted
  quad is a version, not an IP, after a version word or software name ("driver package",
  "patch", "build", "Chrome", ...), glued to a suffix (`-beta`), or in an upgrade chain
  ("from 6.1.2.3 to 6.1.2.4", "6.1.2.3 -> 6.1.2.4");
- cards: 13-19 digits with a known brand prefix and a valid Luhn checksum.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

import numpy as np
import phonenumbers
import pyarrow as pa

from curate import schema
from curate.filters.config import PiiConfig
from curate.pipeline.stage import Stage

PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP>", "phone": "<PHONE>", "card": "<CARD>"}

EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_](?:[\w.%+-]{0,63})@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_QUAD = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
IPV4 = re.compile(rf"(?<![\w.]){_QUAD}(?![\w]|\.\d)")
# The dotted tail is tried first so ::ffff:8.8.8.8 is one candidate, never ::ffff:8 plus a quad.
IPV6 = re.compile(rf"(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_QUAD}(?![\w]|\.\d)|[0-9A-Fa-f]{{1,4}}(?![\w:])|(?<=:)(?![\w:]))")
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_VERSION_WORDS = frozenset(
    "v ver version versions release build firmware patch driver drivers update upgrade package kernel rev revision bios sp "
    "hotfix treiber versión edition runtime sdk rom fw sw".split()
)
_SOFTWARE = frozenset(
    "chrome chromium firefox windows android office java node.js node edge thunderbird vlc nvidia geforce radeon amd intel "
    "realtek ios ipados macos safari opera ubuntu debian python php mysql postgresql nginx apache openssl photoshop excel "
    "outlook steam skype itunes .net dotnet eclipse gradle maven docker kubernetes sharepoint acrobat blender gimp "
    "libreoffice wordpress joomla drupal magento".split()
)
_SOFTWARE_PAIRS = frozenset(("sql server", "windows server", "visual studio", "exchange server", "adobe reader", "internet explorer"))
_WORD = re.compile(r"[\w.]+")
_VERSION_SUFFIX = re.compile(r"[-+~](?:alpha|beta|rc|pre|dev|snapshot|final|build|b\d|r\d)", re.IGNORECASE)
# "from X to Y" and "X -> Y" between dotted numbers: an upgrade, not traffic between hosts.
_CHAIN_AFTER = re.compile(r"\s*(?:->|→|=>)\s*\d+\.\d+")
_CHAIN_BEFORE = re.compile(r"\d+(?:\.\d+){2,}[-+\w]*\s*(?:->|→|=>)\s*$")
_FROM_TO = re.compile(r"\bfrom\s+(?:v\s?)?\d+(?:\.\d+){2,}\s+to\s+(?:v\s?)?\d+(?:\.\d+){2,}", re.IGNORECASE)
# Not inside a table of digit groups: no group right before, none of four digits right after.
CARD = re.compile(r"(?<![\w.,+-])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")
# A phone candidate: 7+ digits joined by up to three of space - / ( ) at a time, or one dot
# (a dot with a space is a sentence end, not a separator).
PHONE_CANDIDATE = re.compile(r"(?<![\w+.,])(?<!\d[ \u00a0\-/.])(?:\+|\(\s?)?\d(?:(?:[ \u00a0\-/()]{0,3}|\.)\d){6,24}\)?(?!\w)")
_NEXT_GROUP = re.compile(r"[ -]\d{4}(?!\d)")
_GROUP_END = re.compile(r"\d(?=[ \u00a0\-/.()]+\d)")
#: Longer candidates are often a phone glued to the next number (a year, a date, an ID).
_MAX_PHONE_DIGITS = 12
_DATE = re.compile(r"\d{1,2}([./-])\d{1,2}\1\d{2,4}|\d{4}([./-])\d{1,2}\2\d{1,2}")
_DOTTED = re.compile(r"\d{1,3}(?:\.\d{1,4}){2,3}|\d+\.\d+")  # versions, dotted quads, decimals
_BINARY = re.compile(r"[01]{4}(?:[ \u00a0][01]{4})+")
_THOUSANDS = re.compile(r"\d{1,2}(?:[ \u00a0]\d{3})+")  # 49 911 148 inhabitants
_SCORES = re.compile(r"\d{1,2}-\d{1,2}(?:[ \u00a0]\d{1,2}-\d{1,2})+")  # 13-21 9-21 21-9
_CARD_SHAPE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -]?)\d{6}\2\d{4,5}")
_UNIT_AFTER = re.compile(
    r"[ \u00a0]?(?:km|mi|m|cm|mm|kg|g|t|ha|l|ml|%|‰|°|€|\$|£|¥|₽|eur|usd|chf|gbp|rub|inhabitants|people|views|votes|times)(?!\w)",
    re.IGNORECASE,
)
_IBAN_BEFORE = re.compile(r"(?:\b[Ii][Bb][Aa][Nn]\W{0,3}|\b[A-Z]{2}\d{2}[ \u00a0]?)$")
_PHONE_LABEL = re.compile(
    r"(?:\b(?:tel|tél|tele?fon|telefono|téléphone|telephone|phone|ph|fon|fax|telefax|mobile?|mob|mobil|cell|handy|hotline|"
    r"whatsapp|call|ring|rufen|appelez|llámenos|bel|puhelin|contact|kontakt)\b|電話|☎|📞)[^\d\n]{0,16}$",
    re.IGNORECASE,
)
_ID_LABEL = re.compile(
    r"(?:\b(?:isbn(?:-1[03])?|issn|order|customer|client\s+id|case|invoice|account|iban|ticket|ref(?:erence)?|serial|tracking|"
    r"article|item|sku|id|no|nr|nummer|number|kunden\w*|bestell\w*|rechnung\w*|auftrag\w*|vertrag\w*|art\.-nr)|#)\W{0,3}$",
    re.IGNORECASE,
)
_LENIENCY = {
    "possible": phonenumbers.Leniency.POSSIBLE,
    "valid": phonenumbers.Leniency.VALID,
    "strict_grouping": phonenumbers.Leniency.STRICT_GROUPING,
    "exact_grouping": phonenumbers.Leniency.EXACT_GROUPING,
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Prefix and length of Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if digits.startswith("6011") or p2 == 65 or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if p2 == 62:
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67):
        return 12 <= n <= 19
    return False


def _ipv6_shape_ok(candidate: str) -> bool:
    """Three or more groups and one of three or more hex digits: never a slice or a time."""
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 3 and any(len(g) >= 3 for g in groups)


def _version_context(text: str, start: int, end: int) -> bool:
    """A dotted quad that is a version: after a version word or software name (two words back),
    glued to a suffix such as -beta, or in an upgrade chain (from X to Y, X -> Y)."""
    words = [w.lower().rstrip(".") for w in _WORD.findall(text[max(0, start - 32) : start])[-2:]]
    if " ".join(words) in _SOFTWARE_PAIRS:
        return True
    for word in words:
        if word in _VERSION_WORDS or word in _SOFTWARE or word.endswith("version"):
            return True
    if _VERSION_SUFFIX.match(text, end) or _CHAIN_AFTER.match(text, end) or _CHAIN_BEFORE.search(text[max(0, start - 40) : start]):
        return True
    window = text[max(0, start - 60) : end + 60]
    offset = max(0, start - 60)
    return any(m.start() + offset <= start and end <= m.end() + offset for m in _FROM_TO.finditer(window))


def _not_a_phone(raw: str, text: str, end: int) -> bool:
    """Shapes libphonenumber may accept somewhere that are dates, decimals, versions, grouped
    thousands, bits, card-like numbers or quantities."""
    return bool(
        _DATE.search(raw)
        or _DOTTED.fullmatch(raw)
        or ("." in raw and " " in raw)
        or _BINARY.fullmatch(raw)
        or _THOUSANDS.fullmatch(raw)
        or _CARD_SHAPE.fullmatch(raw)
        or _SCORES.fullmatch(raw)
        or (raw.isdigit() and raw[0] != "0")  # a bare integer is a count or an ID
        or _UNIT_AFTER.match(text, end)
    )


def _max_digits(piece: str) -> int:
    """Most digits a phone number written this way has: E.164's 15 with +CC (17 with 00CC),
    13 for a national number with its trunk prefix."""
    return 15 if piece.startswith("+") else 17 if piece.startswith("00") else 13


def _trimmed(candidate: str) -> list[str]:
    """The candidate when it is no longer than a phone number can be, else its prefixes cut at
    digit group boundaries that are (longest first): a phone glued to a year or an ID."""
    limit = _max_digits(candidate)
    if sum(ch.isdigit() for ch in candidate) <= _MAX_PHONE_DIGITS:
        return [candidate]
    pieces = [candidate] if sum(ch.isdigit() for ch in candidate) <= limit else []
    for m in reversed(list(_GROUP_END.finditer(candidate))):
        piece = candidate[: m.end()]
        n = sum(ch.isdigit() for ch in piece)
        if n < 7:
            break
        if n <= limit:
            pieces.append(piece)
    return pieces


class _NumberingPlan:
    """A cheap first test of a national number against one region's plan (length and the
    national-number pattern, after the trunk prefix), so libphonenumber's matcher, ~1 ms a
    call, only runs for regions the digits could belong to."""

    def __init__(self, region: str):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        self.trunk = meta.national_prefix or ""
        self.lengths = frozenset(meta.general_desc.possible_length or ())
        self.pattern = re.compile(meta.general_desc.national_number_pattern or r"\d+")

    def plausible(self, digits: str) -> bool:
        national = digits[len(self.trunk) :] if self.trunk and digits.startswith(self.trunk) else digits
        return any(len(n) in self.lengths and self.pattern.fullmatch(n) for n in {national, digits})


def _idd_region(regions: list[str]) -> str:
    """A configured region whose international call prefix is 00 (most of the world), so
    0049 30 ... reads as +49 30 ...; GB when none is."""
    for region in regions:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if meta is not None and meta.international_prefix and re.fullmatch(meta.international_prefix, "00"):
            return region
    return "GB"


def _card_end(candidate: str) -> int:
    """Length of the longest prefix of candidate, cut at a group boundary, that is a card
    (13-19 digits, a brand's prefix and length, valid Luhn): 0 when none is."""
    ends = [m.end() for m in re.finditer(r"\d+", candidate)]
    for end in reversed(ends):
        digits = re.sub(r"\D", "", candidate[:end])
        if len(digits) < 13:
            break
        if len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
            return end
    return 0


class PiiFinder:
    """Finds PII spans [(start, end, type)], non-overlapping, in text order."""

    def __init__(self, cfg: PiiConfig):
        self.cfg = cfg
        self.regions = list(cfg.phone_regions)
        self.leniency = _LENIENCY[cfg.phone_leniency]
        self.labelled_leniency = _LENIENCY[cfg.labelled_phone_leniency]
        self.idd_region = _idd_region(self.regions)
        self.plans = {region: _NumberingPlan(region) for region in self.regions}

    def _ip_ok(self, candidate: str) -> bool:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            elif not _ipv6_shape_ok(candidate):
                return False
            elif self.cfg.keep_private_ips:
                return ip in _GLOBAL_UNICAST and ip.is_global
        return ip.is_global or not self.cfg.keep_private_ips

    def _phone_spans(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Phone numbers libphonenumber finds in the candidate text[start:end] (absolute spans)."""
        candidate = text[start:end]
        before = text[max(0, start - 24) : start]
        if _CARD_SHAPE.fullmatch(candidate) or _IBAN_BEFORE.search(before):
            return []
        labelled = _PHONE_LABEL.search(before) is not None
        if not labelled and _ID_LABEL.search(before):
            return []
        international = candidate.startswith(("+", "00"))
        if not labelled and not international and sum(ch.isdigit() for ch in candidate) > _max_digits(candidate):
            return []  # a run of numbers (a table, a list of IDs) with no label saying a phone is among them
        # Numbers with a country code parse the same in any region: one pass suffices.
        if candidate.startswith("+"):
            regions = self.regions[:1]
        elif candidate.startswith("00"):
            regions = [self.idd_region]
        else:
            regions = self.regions
        # A label only relaxes the leniency when no region finds a valid number.
        for lenient in (self.leniency, self.labelled_leniency) if labelled else (self.leniency,):
            for piece in _trimmed(candidate):
                digits = re.sub(r"\D", "", piece)
                for region in regions:
                    if region in self.plans and not (piece.startswith(("+", "00")) or self.plans[region].plausible(digits)):
                        continue
                    found = [
                        (start + m.start, start + m.end)
                        for m in phonenumbers.PhoneNumberMatcher(piece, region, leniency=lenient)
                        if labelled or not _not_a_phone(m.raw_string, text, start + m.end)
                    ]
                    if found:
                        return found
        return []

    def find(self, text: str) -> list[tuple[int, int, str]]:
        spans: list[tuple[int, int, str]] = []
        if not text:
            return spans
        taken = np.zeros(len(text) + 1, dtype=bool)

        def add(start: int, end: int, kind: str) -> None:
            if not taken[start:end].any():
                taken[start:end] = True
                spans.append((start, end, kind))

        cfg = self.cfg
        if cfg.email and "@" in text:
            for m in EMAIL.finditer(text):
                add(m.start(), m.end(), "email")
        if cfg.card:
            for m in CARD.finditer(text):
                if not _IBAN_BEFORE.search(text, max(0, m.start() - 8), m.start()):
                    end = _card_end(m.group())
                    if end and not _NEXT_GROUP.match(text, m.start() + end):
                        add(m.start(), m.start() + end, "card")
        if cfg.ip:
            if ":" in text:
                for m in IPV6.finditer(text):
                    if self._ip_ok(m.group()):
                        add(m.start(), m.end(), "ip")
            for m in IPV4.finditer(text):
                if not _version_context(text, m.start(), m.end()) and self._ip_ok(m.group()):
                    add(m.start(), m.end(), "ip")
        if cfg.phone:
            for m in PHONE_CANDIDATE.finditer(text):
                if taken[m.start() : m.end()].all():
                    continue
                for start, end in self._phone_spans(text, m.start(), m.end()):
                    add(start, end, "phone")
        spans.sort()
        return spans

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        spans = self.find(text)
        counts: Counter[str] = Counter()
        if not spans:
            return text, counts
        out, pos = [], 0
        for start, end, kind in spans:
            out.append(text[pos:start])
            out.append(PLACEHOLDERS[kind])
            counts[kind] += 1
            pos = end
        out.append(text[pos:])
        return "".join(out), counts


class PiiRedactor(Stage):
    name = "pii"
    reason_namespaces = ("pii",)  # only errors (error:pii:...): redaction never drops a row

    def __init__(self, cfg: PiiConfig):
        self.finder = PiiFinder(cfg)
        self.totals: Counter[str] = Counter()

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = schema.active_mask(batch).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(mask).tolist()
        if not rows:
            return batch
        texts = batch.column(schema.TEXT).to_pylist()
        counts_col = batch.column(schema.PII_COUNTS).to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        changed = False
        for row in rows:
            text = texts[row]
            if not text:
                continue
            try:
                new_text, counts = self.finder.redact(text)
            except Exception as err:
                reasons[row] = f"{schema.ERROR_PREFIX}pii:{type(err).__name__}"
                continue
            counts_col[row] = sorted(counts.items())
            self.totals.update(counts)
            self.totals["documents_redacted"] += bool(counts)
            if new_text != text:
                texts[row] = new_text
                changed = True
        if changed:
            batch = schema.set_column(batch, schema.TEXT, texts)
        batch = schema.set_column(batch, schema.PII_COUNTS, pa.array(counts_col, schema.DOC_SCHEMA.field(schema.PII_COUNTS).type))
        if any(reasons):
            batch = schema.mark_dropped(batch, reasons)
        return batch

    def stats(self) -> dict[str, Any]:
        return dict(self.totals)
