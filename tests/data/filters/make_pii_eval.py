"""PII evaluation set, built independently of the redactor (this module never imports it).

    .venv/bin/python tests/data/filters/make_pii_eval.py [/work/shared/data] [tune|heldout]

Base text is real: sentences of the lingua/Leipzig web corpora (``langid/``) and English
Wikipedia (``wikipedia/``) from the shared data; a base sentence with an ``@`` or a run of seven
or more digits is skipped, so the real text carries no PII of its own. Into it go:

- PII, written the way each country writes it (national numbering plans of 15 countries,
  international, ``00`` and trunk-prefix forms, the labels people put in front), public IPv4,
  IPv6 (compressed, exploded, upper case, IPv4-mapped, bracketed with a port), e-mail addresses
  (sub-domains, plus-tags, internationalized local parts) and Luhn-valid card numbers of eight
  brands in the usual groupings;
- look-alikes from technical and commercial text (version strings after many words and software
  names, upgrade chains, code slices, C++ scopes, times, MAC addresses, hashes, UUIDs, order,
  customer, case and invoice numbers, ISBN/ISSN, IBAN, binary nibbles, dates, prices,
  coordinates, population figures with space separators, Luhn-invalid card-like numbers), and
  every real Wikipedia sentence with six or more digits as it is (dates, figures, road numbers).

Two splits come from disjoint base sentences and different seeds: ``tune`` (the one to look at
while improving the rules) and ``heldout`` (only reported, never inspected while tuning).
Inserted values are synthetic (random public IPs, Luhn-valid test-style card numbers, random
subscriber numbers inside real area codes), so no real person's data is involved.

Each document: {"text", "gold": [[start, end, type, family]], "lookalikes": [[start, end, family]]}.
"""

from __future__ import annotations

import csv
import gzip
import ipaddress
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

SEEDS = {"tune": 17_2024, "heldout": 17_9001}
PII_PER_DOC = 3
_PII_IN_BASE = re.compile(r"@|\d(?:[\s().\-/]?\d){6,}")
_MANY_DIGITS = re.compile(r"(?:\d\D{0,3}){6,}")


class Gen:
    """Random values for one split (one seeded generator, so a split is reproducible)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def d(self, n: int, first: str = "0123456789") -> str:
        return self.rng.choice(first) + "".join(self.rng.choice("0123456789") for _ in range(n - 1))

    def pick(self, seq):
        return self.rng.choice(seq)

    # ---------------------------------------------------------------- phones
    def phone(self) -> tuple[str, str]:
        country, formats = self.pick(list(self.phone_formats().items()))
        fmt = self.pick(formats)
        return fmt(), f"phone:{country}"

    def phone_formats(self) -> dict[str, list[Callable[[], str]]]:
        d, p = self.d, self.pick
        us_area = lambda: p(["201", "212", "213", "305", "312", "415", "512", "617", "646", "702", "718", "917", "416", "604"])  # noqa: E731
        us_exch = lambda: d(3, "23456789")  # noqa: E731
        de_area = lambda: p(["30", "89", "40", "69", "221", "211", "711", "351", "341", "511", "911"])  # noqa: E731
        fr_geo = lambda: p("12345")  # noqa: E731
        return {
            "us": [
                lambda: f"({us_area()}) {us_exch()}-{d(4)}",
                lambda: f"{us_area()}-{us_exch()}-{d(4)}",
                lambda: f"{us_area()}.{us_exch()}.{d(4)}",
                lambda: f"1 ({us_area()}) 555-01{d(2)}",
                lambda: f"+1 {us_area()} {us_exch()} {d(4)}",
                lambda: f"+1-{us_area()}-{us_exch()}-{d(4)}",
                lambda: f"1-{us_area()}-{us_exch()}-{d(4)}",
                lambda: f"+1{us_area()}{us_exch()}{d(4)}",
                lambda: f"1-800-{us_exch()}-{d(4)}",
            ],
            "uk": [
                lambda: f"020 7946 0{d(3)}",
                lambda: f"+44 20 7946 0{d(3)}",
                lambda: f"+44 (0)20 7946 0{d(3)}",
                lambda: f"0161 496 0{d(3)}",
                lambda: f"0113 496 0{d(3)}",
                lambda: f"07700 900{d(3)}",
                lambda: f"+44 7700 900{d(3)}",
                lambda: f"01632 960{d(3)}",
                lambda: f"0044 20 7946 0{d(3)}",
            ],
            "de": [
                lambda: f"030 {d(8, '23456789')}",
                lambda: f"030/{d(7, '23456789')}",
                lambda: f"(0{de_area()}) {d(7, '23456789')}",
                lambda: f"0221 / {d(3, '23456789')} {d(4)}",
                lambda: f"+49 {de_area()} {d(7, '23456789')}",
                lambda: f"+49 (0){de_area()} {d(7, '23456789')}",
                lambda: f"0049 {de_area()} {d(7, '23456789')}",
                lambda: f"0{p(['151', '160', '170', '171', '172', '176'])} {d(7)}",
                lambda: f"+49 {p(['151', '152', '160', '170', '171', '176'])} {d(8)}",
                lambda: f"0{de_area()} {d(5, '23456789')}-{d(2)}",
            ],
            "fr": [
                lambda: f"0{fr_geo()} {d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"0{p('67')} {d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"+33 {fr_geo()} {d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"+33 (0){p('67')} {d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"0033 {fr_geo()} {d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"0{fr_geo()}.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
                lambda: f"0{p('67')}-{d(2)}-{d(2)}-{d(2)}-{d(2)}",
            ],
            "it": [
                lambda: f"06 {d(4)} {d(4)}",
                lambda: f"02 {d(4)} {d(4)}",
                lambda: f"+39 06 {d(8)}",
                lambda: f"3{p(['33', '38', '47', '40', '49'])} {d(3)} {d(4)}",
                lambda: f"+39 3{p(['33', '38', '47', '40', '49'])} {d(7)}",
            ],
            "es": [
                lambda: f"91{d(1)} {d(3)} {d(3)}",
                lambda: f"93 {d(3)} {d(2)} {d(2)}",
                lambda: f"+34 6{d(2)} {d(2)} {d(2)} {d(2)}",
                lambda: f"+34 91{d(1)} {d(3)} {d(3)}",
                lambda: f"6{d(2)} {d(3)} {d(3)}",
            ],
            "nl": [
                lambda: f"020 {d(3, '23456789')} {d(4)}",
                lambda: f"+31 20 {d(3, '23456789')} {d(4)}",
                lambda: f"06 {d(8, '12345')}",
                lambda: f"+31 6 {d(4, '12345')} {d(4)}",
                lambda: f"010-{d(7, '23456789')}",
            ],
            "ch": [
                lambda: f"044 {d(3, '23456789')} {d(2)} {d(2)}",
                lambda: f"+41 44 {d(3, '23456789')} {d(2)} {d(2)}",
                lambda: f"079 {d(3)} {d(2)} {d(2)}",
                lambda: f"+41 79 {d(3)} {d(2)} {d(2)}",
            ],
            "at": [
                lambda: f"01 {d(3, '23456789')} {d(4)}",
                lambda: f"+43 1 {d(3, '23456789')} {d(4)}",
                lambda: f"0664 {d(7)}",
                lambda: f"+43 664 {d(7)}",
            ],
            "jp": [
                lambda: f"03-{d(4, '23456789')}-{d(4)}",
                lambda: f"03({d(4, '23456789')}){d(4)}",
                lambda: f"06-{d(4, '23456789')}-{d(4)}",
                lambda: f"090-{d(4, '123456789')}-{d(4)}",
                lambda: f"+81 3 {d(4, '23456789')} {d(4)}",
                lambda: f"+81-90-{d(4, '123456789')}-{d(4)}",
            ],
            "au": [
                lambda: f"(02) {d(4, '3456789')} {d(4)}",
                lambda: f"02 {d(4, '3456789')} {d(4)}",
                lambda: f"04{d(2)} {d(3)} {d(3)}",
                lambda: f"+61 2 {d(4, '3456789')} {d(4)}",
                lambda: f"+61 4{d(2)} {d(3)} {d(3)}",
            ],
            "in": [
                lambda: f"+91 {d(5, '6789')} {d(5)}",
                lambda: f"0{d(5, '6789')} {d(5)}",
                lambda: f"+91 22 {d(4, '2345')} {d(4)}",
                lambda: f"022 {d(4, '2345')} {d(4)}",
            ],
            "br": [
                lambda: f"(11) 9{d(4)}-{d(4)}",
                lambda: f"+55 11 9{d(4)}-{d(4)}",
                lambda: f"(21) {d(4, '2345')}-{d(4)}",
                lambda: f"+55 21 {d(4, '2345')} {d(4)}",
            ],
            "pl": [
                lambda: f"22 {d(3, '2345678')} {d(2)} {d(2)}",
                lambda: f"+48 22 {d(3, '2345678')} {d(2)} {d(2)}",
                lambda: f"+48 {p(['50', '51', '60', '66', '69', '78', '79', '88'])}{d(1)} {d(3)} {d(3)}",
                lambda: f"{p(['50', '51', '60', '66', '69', '78', '79', '88'])}{d(1)} {d(3)} {d(3)}",
            ],
            "se": [
                lambda: f"08-{d(3, '123456789')} {d(3)} {d(2)}",
                lambda: f"+46 8 {d(3, '123456789')} {d(3)} {d(2)}",
                lambda: f"070-{d(3)} {d(2)} {d(2)}",
                lambda: f"+46 70 {d(3)} {d(2)} {d(2)}",
            ],
        }

    # ------------------------------------------------------------ other PII
    def email(self) -> tuple[str, str]:
        p = self.pick
        local = p(["anna", "j.smith", "mueller", "li.wei", "o_connor", "maria-jose", "k.tanaka", "support", "info", "jean-luc.picard",
                   "s.kowalski", "lars.nilsson", "b2b-sales", "noreply", "a.rossi", "m.garcia", "hello", "team"])
        if self.rng.random() < 0.3:
            local += str(self.rng.randint(1, 1999))
        family = "email:plain"
        if self.rng.random() < 0.15:
            local, family = local + p(["+news", "+shop", "+2024", "+github"]), "email:tagged"
        elif self.rng.random() < 0.08:
            local, family = p(["jürgen", "françois", "josé", "søren", "zoë"]) + p(["", ".b", "_k"]), "email:unicode_local"
        host = p(["gmail.com", "mail.uni-hamburg.de", "cs.ox.ac.uk", "example-shop.fr", "lists.server.co.jp", "web.de", "outlook.com",
                  "posteo.net", "kth.se", "uniroma1.it", "correo.ugr.es", "mail.ru", "yahoo.com.br", "student.unsw.edu.au"])
        if self.rng.random() < 0.1:
            host, family = host.upper(), "email:upper_host"
        return f"{local}@{host}", family

    def public_ipv4(self) -> str:
        while True:
            ip = ipaddress.IPv4Address(self.rng.getrandbits(32))
            if ip.is_global and not ip.is_multicast:
                return str(ip)

    def ip(self) -> tuple[str, str]:
        kind = self.pick(["v4", "v4", "v4", "v4_port", "v6", "v6_exploded", "v6_upper", "v6_zeros", "v6_mapped", "v6_bracket"])
        if kind == "v4":
            return self.public_ipv4(), "ip:v4"
        if kind == "v4_port":
            return f"{self.public_ipv4()}:{self.pick(['22', '80', '443', '8080', '3389'])}", "ip:v4_port"
        if kind == "v6_mapped":
            return f"::ffff:{self.public_ipv4()}", "ip:v6_mapped"
        while True:
            ip = ipaddress.IPv6Address((0x1 << 125) | self.rng.getrandbits(125))  # 2000::/3, global unicast
            if ip.is_global:
                break
        if kind == "v6_zeros":  # a run of zero groups to compress
            groups = ip.exploded.split(":")
            groups[self.rng.randint(2, 4) : 6] = ["0000"] * (6 - 2)
            ip = ipaddress.IPv6Address(":".join(groups[:8]))
        text = {"v6": ip.compressed, "v6_exploded": ip.exploded, "v6_upper": ip.compressed.upper(), "v6_zeros": ip.compressed,
                "v6_bracket": f"[{ip.compressed}]:{self.pick(['443', '8443', '51820'])}"}[kind]
        return text, f"ip:{kind}"

    def luhn_complete(self, prefix: str, length: int) -> str:
        body = prefix + self.d(length - len(prefix) - 1)
        for check in "0123456789":
            if luhn_valid(body + check):
                return body + check
        raise AssertionError("unreachable: one check digit always fits")

    def card(self) -> tuple[str, str]:
        brand = self.pick(["visa", "visa", "mastercard", "mastercard2", "amex", "discover", "jcb", "diners", "unionpay", "maestro"])
        prefix, length = {
            "visa": ("4", 16), "mastercard": (str(self.rng.randint(51, 55)), 16), "mastercard2": (str(self.rng.randint(2221, 2720)), 16),
            "amex": (self.pick(["34", "37"]), 15), "discover": ("6011", 16), "jcb": (str(self.rng.randint(3528, 3589)), 16),
            "diners": (self.pick(["36", "300", "305"]), 14), "unionpay": ("62", 16), "maestro": (self.pick(["6759", "5018"]), 16),
        }[brand]
        number = self.luhn_complete(prefix, length)
        sep = self.pick(["", " ", " ", "-"])
        if not sep:
            return number, f"card:{brand}"
        sizes = {15: [4, 6, 5], 14: [4, 6, 4]}.get(length, [4, 4, 4, 4])
        return group(number, sizes, sep), f"card:{brand}"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        v = int(ch) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    return sep.join(out)


PII_TEMPLATES = {
    "phone": [
        "Call us at {}.", "Tel.: {}", "Tel.-Nr. {}", "Phone no. {} (office hours).", "Telefon: {}", "Fax {}", "Mobile: {}",
        "Handy {}", "Tél. {}", "Appelez le {} pour réserver.", "Rufen Sie uns an unter {}.", "Llámenos al {}.", "Telefono {}",
        "Bel ons op {}.", "電話 {}", "For bookings ring {} today.", "Hotline {} (Mo-Fr)", "WhatsApp {}", "Contact: {}",
        "Ring {} or drop by.", "Our office: {}, open daily.", "Kontakt: {}", "Puhelin {}", "Tel {} / info desk",
    ],
    "email": ["Contact {} for details.", "Send your CV to {}.", "E-mail: {}", "(mail {} or write to us)", "Mail an {} senden.",
              "Écrivez à {}.", "Questions? {}", "Reply to <{}>.", "Kontakt: {}."],
    "ip": ["The request came from {} at noon.", "Server address: {}.", "Blocked host {} after repeated logins.",
           "Log line: client={} status=403", "ssh root@host -J {} failed", "Die Anfrage kam von {}.", "curl http://{}/health",
           "Origin IP {}, reverse DNS unknown.", "{} - - [12/Mar/2024:10:01:02 +0000] \"GET / HTTP/1.1\" 200"],
    "card": ["Card number {} was charged.", "Paid with {}.", "Please update card {} before June.", "Kartennummer: {}",
             "Numéro de carte {}.", "CC: {} exp 09/27", "Visa {}"],
}


def lookalikes(g: Gen) -> list[tuple[str, Callable[[], str]]]:
    """(family, sentence maker); each sentence is one look-alike span as a whole."""
    d, p, r = g.d, g.pick, g.rng.randint
    quad = lambda: f"{r(1, 30)}.{r(0, 40)}.{r(0, 250)}.{r(0, 255)}"  # noqa: E731  all four fit in an octet
    words = ["driver package", "patch", "build", "release", "update", "firmware", "version", "Version", "v", "ver.", "kernel",
             "rev", "BIOS", "SP", "hotfix", "package", "Treiber", "versión", "agent"]
    software = ["Chrome", "Firefox", "Windows", "Android", "Office", "Java", "Node.js", "SQL Server", "Edge", "Thunderbird", "VLC",
                "Nvidia driver", "iOS", "macOS", "Safari", "Opera"]
    return [
        ("version:word", lambda: f"Install {p(words)} {quad()} before rebooting."),
        ("version:word", lambda: f"The {p(words)} {quad()} fixes the crash."),
        ("version:software", lambda: f"Tested with {p(software)} {quad()}."),
        ("version:software", lambda: f"{p(software)} {quad()} (64-bit) is now available."),
        ("version:chain", lambda: f"Upgrade from {quad()} to {quad()} is recommended."),
        ("version:chain", lambda: f"Changelog {quad()} -> {quad()}: minor fixes."),
        ("version:glued", lambda: f"See v{quad()} and {quad()}-beta."),
        ("version:assembly", lambda: f'[assembly: AssemblyVersion("{quad()}")]'),
        ("code:slice", lambda: f"Take every other item with xs[::{r(2, 9)}]."),
        ("code:slice", lambda: f"odd = a[1::{r(2, 4)}]; rev = s[::-1]"),
        ("code:slice", lambda: f"arr[{r(0, 9)}::{r(2, 9)}] selects the strided view."),
        ("code:slice", lambda: f"np.arange(100)[{r(1, 20)}:{r(30, 90)}:{r(2, 5)}]"),
        ("code:scope", lambda: f"std::vector<int> v({r(1, 99)}); std::sort(v.begin(), v.end());"),
        ("code:scope", lambda: "use std::collections::HashMap; let m: HashMap<u32, u32> = HashMap::new();"),
        ("code:scope", lambda: "Foo::bar::baz() returns a::b::c"),
        ("code:time", lambda: f"Started at {r(0, 23):02d}:{r(0, 59):02d}:{r(0, 59):02d} and ended {r(0, 23):02d}:{r(0, 59):02d}."),
        ("code:time", lambda: f"timestamp 2024-{r(1, 12):02d}-{r(1, 28):02d}T{r(0, 23):02d}:{r(0, 59):02d}:{r(0, 59):02d}Z"),
        ("code:time", lambda: f"Lap time {r(1, 2)}:{r(10, 59)}:{r(100, 999)}, split 1:{r(10, 59)}.{r(10, 99)}"),
        ("code:mac", lambda: "MAC " + ":".join(f"{g.rng.getrandbits(8):02x}" for _ in range(6))),
        ("code:hash", lambda: f"commit {g.rng.getrandbits(160):040x}"),
        ("code:hash", lambda: f"sha256: {g.rng.getrandbits(256):064x}"),
        ("code:hash", lambda: f"md5 {g.rng.getrandbits(128):032x} OK"),
        ("code:uuid", lambda: f"request id {g.rng.getrandbits(32):08x}-{g.rng.getrandbits(16):04x}-4{g.rng.getrandbits(12):03x}-"
         f"a{g.rng.getrandbits(12):03x}-{g.rng.getrandbits(48):012x}"),
        ("code:binary", lambda: f"The byte is {' '.join(''.join(p('01') for _ in range(4)) for _ in range(r(2, 4)))} in binary."),
        ("code:port", lambda: f"listen 0.0.0.0:{r(1000, 9999)}; upstream 127.0.0.1:{r(1000, 9999)}"),
        ("id:order", lambda: f"Order #{d(3)}-{d(3)}-{d(4)} has shipped."),
        ("id:order", lambda: f"order no. 0{d(9)}"),
        ("id:order", lambda: f"Bestellnummer: {d(10)}"),
        ("id:customer", lambda: f"Kundennummer: 0{d(9)}"),
        ("id:customer", lambda: f"Customer ID 0{d(8)}, please quote it."),
        ("id:case", lambda: f"Case number {d(2)}-{d(6)} was closed."),
        ("id:invoice", lambda: f"Invoice {d(4)}/{d(6)} is due."),
        ("id:invoice", lambda: f"Rechnungsnummer {d(4)} {d(4)} {d(2)}"),
        ("id:tracking", lambda: f"Tracking number 1Z{d(6)}{d(10)}"),
        ("id:ticket", lambda: f"Ticket {d(3)} {d(3)} {d(3)} reopened."),
        ("id:isbn", lambda: f"ISBN 978-{r(0, 9)}-{d(3)}-{d(5)}-{r(0, 9)}"),
        ("id:isbn", lambda: f"ISBN 0-{d(3)}-{d(5)}-{r(0, 9)}"),
        ("id:issn", lambda: f"ISSN {d(4)}-{d(4)}"),
        ("id:iban", lambda: f"IBAN DE{d(2)} {d(4)} {d(4)} {d(4)} {d(4)} {d(2)}"),
        ("id:article", lambda: f"Art.-Nr. {d(3)}.{d(3)}.{d(2)}"),
        ("id:sku", lambda: f"SKU {d(4)}-{d(4)}-{d(2)}"),
        ("date", lambda: f"on {r(1990, 2030)}-{r(1, 12):02d}-{r(1, 28):02d}"),
        ("date", lambda: f"am {r(1, 28):02d}.{r(1, 12):02d}.{r(1990, 2030)}"),
        ("date", lambda: f"due {r(1, 12):02d}/{r(1, 28):02d}/{r(1990, 2030)}"),
        ("date", lambda: f"{r(1, 28):02d}.{r(1, 12):02d}.{r(1990, 2030)} - {r(1, 28):02d}.{r(1, 12):02d}.{r(1990, 2030)}"),
        ("date", lambda: f"period {r(1990, 2030)}{r(1, 12):02d}{r(1, 28):02d}-{r(1990, 2030)}{r(1, 12):02d}{r(1, 28):02d}"),
        ("price", lambda: f"${r(1, 9)},{r(100, 999)}.{r(10, 99)}"),
        ("price", lambda: f"€ {r(10, 99)}.{r(100, 999)},{r(10, 99)}"),
        ("price", lambda: f"Preis: {r(1, 9)} {r(100, 999)},{r(10, 99)} EUR"),
        ("price", lambda: f"Total 1 {r(100, 999)} {r(100, 999)} ₽"),
        ("coordinates", lambda: f"at {r(-89, 89)}.{d(6)}, {r(-179, 179)}.{d(6)}"),
        ("coordinates", lambda: f"{r(0, 89)}°{r(0, 59)}′{r(0, 59)}″N {r(0, 179)}°{r(0, 59)}′{r(0, 59)}″E"),
        ("coordinates", lambda: f"GPS: N {r(0, 89)} {r(0, 59)}.{d(3)} E {r(0, 179):03d} {r(0, 59)}.{d(3)}"),
        ("number", lambda: f"a population of {r(1, 99)} {r(100, 999)} {r(100, 999)}"),
        ("number", lambda: f"{r(1, 999)},{r(100, 999)},{r(100, 999)} views"),
        ("number", lambda: f"{r(1900, 2024)}–{r(1900, 2024)}"),
        ("number", lambda: f"scores 10{d(6)} and 3.14159{d(4)}"),
        ("number", lambda: f"Range {d(4)}-{d(4)} km, {d(3)} {d(3)} inhabitants"),
        ("card_like", lambda: f"{group(luhn_invalid(g, '4', 16), [4, 4, 4, 4], ' ')} (invalid)"),
        ("card_like", lambda: f"serial {luhn_invalid(g, '5', 16)}"),
        ("card_like", lambda: f"ref {luhn_invalid(g, '37', 15)}"),
    ]


def luhn_invalid(g: Gen, prefix: str, length: int) -> str:
    valid = g.luhn_complete(prefix, length)
    return valid[:-1] + str((int(valid[-1]) + 3) % 10)


def base_sentences(shared_data: Path) -> list[str]:
    """Real sentences without PII of their own, in a fixed order."""
    out = []
    with (shared_data / "langid" / "lingua-sentences.tsv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            out.append(row["text"])
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.extend(s for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if 40 <= len(s) <= 300)
    return [s.replace("\n", " ") for s in out if not _PII_IN_BASE.search(s)]


def real_numeric_sentences(shared_data: Path) -> list[str]:
    """Wikipedia sentences with six or more digits (dates, figures, road numbers): real look-alikes."""
    out = []
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]):
                if 20 <= len(s) <= 400 and "@" not in s and _MANY_DIGITS.search(s):
                    out.append(s.replace("\n", " "))
    return out


def build(shared_data: Path, split: str = "tune", n_docs: int = 400) -> list[dict]:
    g = Gen(SEEDS[split])
    parity = 0 if split == "tune" else 1
    base = base_sentences(shared_data)[parity::2]
    g.rng.shuffle(base)
    numeric = real_numeric_sentences(shared_data)[parity::2]
    looks = lookalikes(g)
    makers = {"email": g.email, "ip": g.ip, "phone": g.phone, "card": g.card}
    docs = []
    for i in range(n_docs):
        parts: list[str] = []
        gold: list[list] = []
        looked: list[list] = []
        pos = 0

        def put(chunk: str, span: tuple[int, int, ...] | None = None, bucket: list | None = None) -> None:
            nonlocal pos
            if span is not None:
                bucket.append([pos + span[0], pos + span[1], *span[2:]])
            parts.append(chunk + " ")
            pos += len(chunk) + 1

        for j in range(PII_PER_DOC):
            put(base[(i * PII_PER_DOC + j) % len(base)])
            kind = g.pick(["phone", "phone", "email", "ip", "card"])
            value, family = makers[kind]()
            sentence = g.pick(PII_TEMPLATES[kind]).format(value)
            start = sentence.index(value)
            if family == "ip:v6_bracket":  # the address inside [...]:port
                start, value = start + 1, value[1 : value.index("]")]
            elif family == "ip:v4_port":
                value = value.rsplit(":", 1)[0]
            put(sentence, (start, start + len(value), kind, family), gold)
            family, make = g.pick(looks)
            sentence = make()
            put(sentence, (0, len(sentence), family), looked)
        if i < len(numeric):
            put(numeric[i], (0, len(numeric[i]), "wikipedia_numbers"), looked)
        docs.append({"text": "".join(parts).rstrip(), "gold": gold, "lookalikes": looked})
    return docs


if __name__ == "__main__":
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    split = sys.argv[2] if len(sys.argv) > 2 else "tune"
    for doc in build(data, split):
        print(json.dumps(doc, ensure_ascii=False))
