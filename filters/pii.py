"""PII redaction: e-mail, public IPv4/IPv6, phone numbers, payment cards -> typed placeholders.

Candidates come from regular expressions and are then validated, so what only looks like PII
stays: IPs are parsed with `ipaddress` (private, loopback, link-local and other non-global
addresses kept by default); a dotted quad right after "v", "version", "ver.", "release",
"build" or "firmware" is a version number, not an IP (a "v" glued to it, as in v1.2.3.4,
never matches); cards must be 13-19 digits with a known
brand prefix and a valid Luhn checksum; phone candidates need 8-15 digits, a leading `+`, `0`
or `(`, or the North-American 3-3-4 shape, and are skipped after words such as "ISBN",
"order", "invoice", "ref", "serial", "tracking" or "#" (catalogue and order numbers), are never a date shape (01/02/2024, 15.01.2024), and
never continue a longer digit run (a Luhn-invalid 16-digit number is not a phone). Dates
(2024-01-15, 15.01.2024), prices and plain numbers never match these shapes.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.filters.config import PiiConfig
from curate.pipeline.stage import Stage

PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP>", "phone": "<PHONE>", "card": "<CARD>"}

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|" + _OCTET + r"(?:\." + _OCTET + r"){3})?(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:\bv|\bversion|\bver\.?|\brelease|\bbuild|\bfirmware)\s*[:#]?\s*$", re.IGNORECASE)
CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")
_SEP = r"[ .\-/]?"
PHONE = re.compile(
    r"(?<![\w+/.,-])(?<!\d[ .\-/])(?:"  # not the tail of a longer digit run (cards, IDs)
    r"\+\d{1,3}[ .-]?(?:\(0\)[ .-]?)?\(?\d{1,4}\)?(?:[ .\-/]?\d{1,5}){1,5}"  # international / E.164
    r"|\(0?\d{2,5}\)[ .-]?\d{2,5}(?:[ .\-/]?\d{2,5}){0,3}"  # (030) 1234 5678, (555) 123-4567
    r"|0\d{1,4}[ .\-/]?\d{2,8}(?:[ .\-/]?\d{2,4}){0,4}"  # national with trunk 0: UK, DE, FR ...
    r"|(?:1[ .-])?\d{3}[ .-]\d{3}[ .-]\d{4}"  # North America 555-123-4567, 555.123.4567
    r")(?![\w]|[.,-]\d)"
)
_DATE = re.compile(r"\d{1,2}([./-])\d{1,2}\1\d{2,4}|\d{4}([./-])\d{1,2}\2\d{1,2}")
_NOT_PHONE_BEFORE = re.compile(
    r"(?:isbn(?:-1[03])?|issn|order|invoice|ref(?:erence)?|serial|tracking|article|item|sku|no\.|nr\.|#)\W{0,3}$",
    re.IGNORECASE,
)


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


class PiiFinder:
    """Finds PII spans [(start, end, type)], non-overlapping, in text order."""

    def __init__(self, cfg: PiiConfig):
        self.cfg = cfg

    def _ip_ok(self, candidate: str) -> bool:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        return ip.is_global or not self.cfg.keep_private_ips

    def find(self, text: str) -> list[tuple[int, int, str]]:
        spans: list[tuple[int, int, str]] = []
        taken = np.zeros(len(text) + 1, dtype=bool) if text else None
        if not text:
            return spans

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
                digits = re.sub(r"\D", "", m.group())
                if 13 <= len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
                    add(m.start(), m.end(), "card")
        if cfg.ip:
            if ":" in text:
                for m in IPV6.finditer(text):
                    if m.group().count(":") >= 2 and self._ip_ok(m.group()):
                        add(m.start(), m.end(), "ip")
            for m in IPV4.finditer(text):
                if _VERSION_BEFORE.search(text, max(0, m.start() - 16), m.start()):
                    continue
                if self._ip_ok(m.group()):
                    add(m.start(), m.end(), "ip")
        if cfg.phone:
            for m in PHONE.finditer(text):
                digits = sum(ch.isdigit() for ch in m.group())
                if not 8 <= digits <= 15 or _DATE.fullmatch(m.group()):
                    continue
                if _NOT_PHONE_BEFORE.search(text, max(0, m.start() - 20), m.start()):
                    continue
                add(m.start(), m.end(), "phone")
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
