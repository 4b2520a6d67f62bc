"""PII redaction: targets on the committed eval set, placeholders, per-type switches, counts."""

from __future__ import annotations

import ast
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate import schema
from curate.filters.config import PiiConfig
from curate.filters.pii import PiiFinder, PiiRedactor, luhn_ok

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pii_eval  # noqa: E402

GENERATOR = Path(__file__).resolve().parent / "data" / "filters" / "make_pii_eval.py"


@pytest.fixture(scope="module", params=["tune", "heldout"])
def report(request, shared_data) -> dict:
    return pii_eval.evaluate(pii_eval.make_pii_eval.build(shared_data, request.param))


def test_eval_set_is_built_without_the_redactor():
    tree = ast.parse(GENERATOR.read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name.startswith("curate") for name in imported)


def test_recall_targets_on_the_independent_set(report):
    per = report["per_type"]
    assert report["gold_total"] >= 1000 and all(per[t]["gold"] >= 200 for t in per)
    assert len({family.split(":")[1] for family in report["families"] if family.startswith("phone:")}) >= 10
    assert per["email"]["recall"] >= 0.99
    assert per["ip"]["recall"] >= 0.99
    assert per["phone"]["recall"] >= 0.95
    assert per["card"]["recall"] >= 0.95


def test_precision_target_and_lookalikes_untouched(report):
    assert report["precision"] >= 0.99
    touched = sum(h for h, _ in report["lookalikes"].values())
    total = sum(n for _, n in report["lookalikes"].values())
    # measured 13/1600 (tune) and 17/1600 (held-out): mostly a phone span running into a number
    # glued to it without punctuation ("Tel. +43 1 616 9406 1941–1992")
    assert total >= 1000 and touched / total <= 0.02


@pytest.mark.parametrize(
    "text, kind",
    [
        ("mail jane.doe+promo@news.mail.example.co.uk now", "email"),
        ("from 8.8.8.8.", "ip"),
        ("via 2606:4700::6810:85e5 today", "ip"),
        ("call +49 (0)30 1234567", "phone"),
        ("ruf 089/1234567 an", "phone"),
        ("appelez le 06.12.34.56.78", "phone"),
        ("card 3714 496353 98431", "card"),
        ("Tel.-Nr. 0221 / 948 0580", "phone"),
        ("Phone no. 1 (617) 555-0171", "phone"),
        ("Fax: 0033 3 19 16 99 66", "phone"),
        ("電話 03(4909)5860", "phone"),
        ("call +49 151 23456789 or", "phone"),
    ],
)
def test_formats(text, kind):
    assert [k for _, _, k in PiiFinder(PiiConfig()).find(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    ["upgrade to version 10.2.0.1", "see v1.2.3.4", "on 2024-01-15 or 15.01.2024", "ISBN 978-3-16-148410-0", "costs $1,299.99",
     "ping 192.168.0.1 and ::1", "a[1:2:3] and std::map", "4111 1111 1111 1112", "Order #555-123-4567",
     "install driver package 6.15.7.89", "patch 3.19.7.67 is out", "upgrade from 8.1.2.3 to 8.1.2.4", "Chrome 120.0.61.109",
     "xs[::2] and a[1::2]", "Kundennummer: 0845479868", "the byte 0110 1001", "at 12:30:45", "IBAN DE89 3704 0044 0532 0130 00"],
)
def test_lookalikes_stay(text):
    assert PiiFinder(PiiConfig()).find(text) == []


def test_a_table_of_digit_groups_is_not_pii():
    rng = random.Random(7)
    table = "\n".join(" ".join(str(rng.randint(1000, 9999)) for _ in range(8)) for _ in range(300))
    assert PiiFinder(PiiConfig()).find(table) == []


def test_ipv4_mapped_ipv6_is_one_span():
    text = "peer ::ffff:8.8.8.8 connected"
    assert PiiFinder(PiiConfig()).redact(text)[0] == "peer <IP> connected"


def test_phone_regions_and_leniency_are_validated_by_name():
    with pytest.raises(ValidationError, match="phone_regions"):
        PiiConfig(phone_regions=["XX"])
    with pytest.raises(ValidationError, match="phone_leniency"):
        PiiConfig(phone_leniency="loose")


def test_national_numbers_follow_the_configured_regions():
    text = "Ring 0221 948 0580 today"
    assert PiiFinder(PiiConfig(phone_regions=["DE"])).find(text) == [(5, 18, "phone")]
    assert PiiFinder(PiiConfig(phone_regions=["US"])).find(text) == []
    assert PiiFinder(PiiConfig(phone_regions=["US"])).find("Ring +49 221 948 0580 today") == [(5, 21, "phone")]


def test_private_ips_redacted_when_configured():
    assert PiiFinder(PiiConfig(keep_private_ips=False)).find("host 10.0.0.5") == [(5, 13, "ip")]


def test_stage_redacts_counts_and_switches_per_type():
    batch = schema.from_rows(
        [
            {"text": "Write to a@b.org or call (415) 555-2671, card 4111 1111 1111 1111."},
            {"text": "mail x@y.com", "drop_reason": "lang:fr"},
        ]
    )
    stage = PiiRedactor(PiiConfig(phone=False))
    out = stage(batch)
    texts = out.column(schema.TEXT).to_pylist()
    assert texts[0] == "Write to <EMAIL> or call (415) 555-2671, card <CARD>."
    assert texts[1] == "mail x@y.com"  # dropped rows are not processed
    assert out.column(schema.PII_COUNTS).to_pylist()[0] == [("card", 1), ("email", 1)]
    assert stage.stats() == {"email": 1, "card": 1, "documents_redacted": 1}


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 .-:/@abc+()v")), max_size=60))
def test_redaction_never_crashes_and_only_inserts_placeholders(text):
    new, counts = PiiFinder(PiiConfig()).redact(text)
    for placeholder in ("<EMAIL>", "<IP>", "<PHONE>", "<CARD>"):
        new = new.replace(placeholder, "")
    assert len(new) <= len(text)
    assert sum(counts.values()) == 0 or new != text


def test_luhn():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
