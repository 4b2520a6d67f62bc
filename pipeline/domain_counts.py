"""Kept tokens per domain in bounded memory: the largest domains, plus one tail bucket.

A crawl has millions of domains; a Counter of all of them on the driver grows with the input.
`DomainCounts` keeps at most `2 * capacity` domains: past that it keeps the `capacity` largest
and moves the others' tokens into `tail_tokens`. The total is always exact. With at most
`capacity` domains in a run every count is exact; past that a listed domain's count is a lower
bound (tokens it had when it was moved to the tail stay there), and the error of any count is at
most `tail_tokens`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

DOMAIN_CAPACITY = 10_000
NO_DOMAIN = "<none>"


@dataclass
class DomainCounts:
    capacity: int = DOMAIN_CAPACITY
    tokens: Counter = field(default_factory=Counter)
    tail_tokens: int = 0

    def add_pairs(self, domains: Iterable[str | None], tokens: Iterable[int]) -> None:
        for dom, t in zip(domains, tokens):
            self.tokens[dom or NO_DOMAIN] += t
        self._bound()

    def merge(self, other: DomainCounts | dict) -> None:
        """Add another count (or its `to_json` form)."""
        other = other if isinstance(other, DomainCounts) else DomainCounts.from_json(other)
        self.tokens.update(other.tokens)
        self.tail_tokens += other.tail_tokens
        self._bound()

    def _bound(self) -> None:
        if len(self.tokens) <= 2 * self.capacity:
            return
        top = self.tokens.most_common(self.capacity)
        self.tail_tokens += sum(self.tokens.values()) - sum(t for _, t in top)
        self.tokens = Counter(dict(top))

    @property
    def total(self) -> int:
        return sum(self.tokens.values()) + self.tail_tokens

    def top(self) -> dict[str, int]:
        """At most `capacity` domains, largest first (ties by name, for a stable output)."""
        return dict(sorted(self.tokens.items(), key=lambda kv: (-kv[1], kv[0]))[: self.capacity])

    def to_json(self) -> dict:
        return {"tokens": dict(self.tokens), "tail_tokens": self.tail_tokens}

    @classmethod
    def from_json(cls, data: dict) -> DomainCounts:
        return cls(tokens=Counter(data["tokens"]), tail_tokens=int(data["tail_tokens"]))
