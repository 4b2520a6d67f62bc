"""Build pii_eval.jsonl: real Wikipedia sentences with PII inserted in many real-world formats,
plus look-alikes that must stay untouched.

    .venv/bin/python tests/data/filters/make_pii_eval.py [/work/shared/data]

Each line: {"text", "gold": [[start, end, type], ...], "lookalikes": [[start, end, kind], ...]}.
Seeded, so rerunning gives the same file. Base text is real (enwiki sample, shared data); the
inserted values are synthetic (random public IPs, Luhn-valid card numbers, 555/Ofcom-style
phone numbers) so no real person's data is committed.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import re
import sys
from pathlib import Path

OUT = Path(__file__).with_name("pii_eval.jsonl")
RNG = random.Random(20240601)


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(RNG.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError


def luhn_invalid(prefix: str, length: int) -> str:
    valid = luhn_complete(prefix, length)
    return valid[:-1] + str((int(valid[-1]) + 3) % 10)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    return sep.join(out)


def d(n: int) -> str:
    return "".join(RNG.choice("0123456789") for _ in range(n))


def email() -> str:
    first = RNG.choice(["anna", "j.smith", "mueller", "li.wei", "o_connor", "maria-jose", "k.tanaka", "support", "info2024"])
    tag = RNG.choice(["", "", "+news", "+shop.de", "+1"])
    host = RNG.choice(["gmail.com", "mail.uni-hamburg.de", "cs.ox.ac.uk", "example-shop.fr", "lists.server.co.jp", "web.de", "outlook.com"])
    return f"{first}{RNG.randint(0, 99) if RNG.random() < 0.3 else ''}{tag}@{host}"


def public_ipv4() -> str:
    while True:
        ip = ipaddress.IPv4Address(RNG.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            return str(ip)


def public_ipv6() -> str:
    while True:
        ip = ipaddress.IPv6Address((0x2 << 125) | RNG.getrandbits(125))  # 2000::/3, global unicast
        if ip.is_global:
            break
    full = ip.exploded
    kind = RNG.choice(["compressed", "exploded", "zeros", "upper"])
    if kind == "zeros":  # a run of zero groups to compress
        groups = full.split(":")
        groups[3:6] = ["0000"] * 3
        return str(ipaddress.IPv6Address(":".join(groups)))
    if kind == "upper":
        return ip.compressed.upper()
    return full if kind == "exploded" else ip.compressed


def phone() -> str:
    fmt = RNG.choice(range(16))
    return [
        lambda: f"+1415555{d(4)}",  # E.164
        lambda: f"+44 20 7946 {d(4)}",
        lambda: f"+49 30 {d(8)}",
        lambda: f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"(415) 555-{d(4)}",
        lambda: f"415-555-{d(4)}",
        lambda: f"415.555.{d(4)}",
        lambda: f"1-800-555-{d(4)}",
        lambda: f"020 7946 {d(4)}",
        lambda: f"07700 900{d(3)}",
        lambda: f"030 {d(8)}",
        lambda: f"0171 {d(7)}",
        lambda: f"089/{d(7)}",
        lambda: f"01 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
    ][fmt]() if fmt < 16 else ""


def card() -> str:
    brand = RNG.choice(["visa", "mc", "mc2", "amex", "discover", "jcb"])
    number = {
        "visa": lambda: luhn_complete("4", 16),
        "mc": lambda: luhn_complete(str(RNG.randint(51, 55)), 16),
        "mc2": lambda: luhn_complete(str(RNG.randint(2221, 2720)), 16),
        "amex": lambda: luhn_complete(RNG.choice(["34", "37"]), 15),
        "discover": lambda: luhn_complete("6011", 16),
        "jcb": lambda: luhn_complete(str(RNG.randint(3528, 3589)), 16),
    }[brand]()
    sep = RNG.choice(["", " ", "-"])
    sizes = [4, 6, 5] if len(number) == 15 else [4, 4, 4, 4]
    return group(number, sizes, sep) if sep else number


PII_TEMPLATES = {
    "email": ["Contact {} for details.", "Send your CV to {}.", "E-mail: {}", "(mail {} or write to us)"],
    "ip": ["The request came from {} at noon.", "Server address: {}.", "Blocked host {} after repeated logins.", "Log line: client={} status=403"],
    "phone": ["Call us at {}.", "Tel.: {}", "Phone {} (office hours).", "For bookings ring {} today."],
    "card": ["Card number {} was charged.", "Paid with {}.", "Please update card {} before June."],
}
LOOKALIKES = [
    ("version", lambda: f"version {RNG.randint(1, 9)}.{RNG.randint(0, 20)}.{RNG.randint(0, 9)}.{RNG.randint(0, 99)}"),
    ("version", lambda: f"v{RNG.randint(1, 9)}.{RNG.randint(0, 20)}.{RNG.randint(0, 9)}.{RNG.randint(0, 99)}"),
    ("version", lambda: f"release {RNG.randint(1, 9)}.{RNG.randint(0, 9)}.{RNG.randint(0, 9)}.{RNG.randint(0, 9)}"),
    ("date", lambda: f"{RNG.randint(1990, 2030)}-{RNG.randint(1, 12):02d}-{RNG.randint(1, 28):02d}"),
    ("date", lambda: f"{RNG.randint(1, 28):02d}.{RNG.randint(1, 12):02d}.{RNG.randint(1990, 2030)}"),
    ("date", lambda: f"{RNG.randint(1, 12):02d}/{RNG.randint(1, 28):02d}/{RNG.randint(1990, 2030)}"),
    ("price", lambda: f"${RNG.randint(1, 9)},{RNG.randint(100, 999)}.{RNG.randint(10, 99)}"),
    ("price", lambda: f"€ {RNG.randint(10, 99)}.{RNG.randint(100, 999)},{RNG.randint(10, 99)}"),
    ("isbn", lambda: "ISBN 978-3-16-148410-0"),
    ("isbn", lambda: "ISBN 0-306-40615-2"),
    ("isbn", lambda: "ISBN-13: 978-0-596-52068-7"),
    ("private_ip", lambda: f"192.168.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}"),
    ("private_ip", lambda: f"10.{RNG.randint(0, 255)}.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}"),
    ("private_ip", lambda: "127.0.0.1"),
    ("private_ip", lambda: "::1"),
    ("private_ip", lambda: "fe80::1ff:fe23:4567:890a"),
    ("code", lambda: "x = a[1:2:3]"),
    ("code", lambda: "std::vector<int> v;"),
    ("code", lambda: "@property"),
    ("code", lambda: "for (i = 0; i < 10; i++) {}"),
    ("luhn_invalid", lambda: group(luhn_invalid("4", 16), [4, 4, 4, 4], " ")),
    ("luhn_invalid", lambda: luhn_invalid("5", 16)),
    ("order", lambda: f"Order #{d(3)}-{d(3)}-{d(4)}"),
    ("order", lambda: f"order no. 0{d(9)}"),
    ("time", lambda: f"{RNG.randint(0, 23):02d}:{RNG.randint(0, 59):02d}:{RNG.randint(0, 59):02d}"),
    ("number", lambda: f"{RNG.randint(1, 999)},{RNG.randint(100, 999)},{RNG.randint(100, 999)}"),
    ("number", lambda: f"{RNG.randint(1900, 2024)}–{RNG.randint(1900, 2024)}"),
]
LOOKALIKE_TEMPLATES = ["It shipped as {}.", "See {} in the notes.", "({})", "Recorded: {}."]


def real_sentences(shared_data: Path, n: int) -> list[str]:
    out = []
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as f:
        for line in f:
            text = json.loads(line)["text"]
            for s in re.split(r"(?<=[.!?])\s+", text):
                if 60 <= len(s) <= 300:
                    out.append(s.replace("\n", " "))
            if len(out) >= n * 3:
                break
    RNG.shuffle(out)
    return out[:n]


def build(shared_data: Path, n_docs: int = 300) -> list[dict]:
    sentences = real_sentences(shared_data, n_docs * 3)
    docs = []
    for i in range(n_docs):
        parts: list[str] = []
        gold, looks = [], []
        pos = 0

        def put(chunk: str, value: str | None = None, kind: str | None = None, bucket: list | None = None) -> None:
            nonlocal pos
            if value is not None:
                start = pos + chunk.index(value)
                bucket.append([start, start + len(value), kind])
            parts.append(chunk)
            pos += len(chunk)

        for s in sentences[i * 3 : i * 3 + 3]:
            put(s + " ")
            kind = RNG.choice(list(PII_TEMPLATES))
            value = {"email": email, "ip": lambda: RNG.choice([public_ipv4, public_ipv6])(), "phone": phone, "card": card}[kind]()
            put(RNG.choice(PII_TEMPLATES[kind]).format(value) + " ", value, kind, gold)
            look_kind, make = RNG.choice(LOOKALIKES)
            look = make()
            put(RNG.choice(LOOKALIKE_TEMPLATES).format(look) + " ", look, look_kind, looks)
        docs.append({"text": "".join(parts).strip(), "gold": gold, "lookalikes": looks})
    return docs


if __name__ == "__main__":
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    docs = build(data)
    with OUT.open("w") as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents to {OUT}")
