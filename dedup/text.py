"""Text normalisation and word n-gram shingle hashes over whole Arrow string arrays.

No Python loop runs per document, word or shingle. Over the batch's UTF-8 bytes at once:

* words are the maximal runs of bytes above 0x20 (the normalised text separates words by one
  ASCII space: `normalize_text` turns every Unicode space into one);
* a word's hash is a polynomial over its bytes, read off byte prefix sums:
  sum c_i B^(i-s) = B^-s * (P[e] - P[s]) with P the prefix sum of c_i B^i (mod 2^64, B odd so
  B^-1 exists), c = the byte value;
* a shingle's hash combines its n word hashes the same way over word prefix sums, so an n-gram
  costs a few vectorized operations whatever n is.

Hashes depend on a string's bytes only, never on its position or neighbours in the batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_U64 = np.uint64
# Every character Python's str.split() treats as white space (RE2's \s is ASCII [\t\n\f\r ] only),
# and the same without the plain space.
_WS = r"\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}"
_WS_NOT_SPACE = r"\t\n\f\r\x{0b}\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_PUNCT = r"\p{P}\p{S}"
_BYTE_BASE = _U64(0x100000001B3)  # odd, so invertible mod 2^64
_WORD_BASE = _U64(0x9E3779B97F4A7C15)  # odd


def normalize_text(texts: pa.Array | pa.ChunkedArray, lowercase: bool = True, strip_punctuation: bool = True,
                   collapse_whitespace: bool = True) -> pa.Array:
    """Normalise for comparison (vectorized in Arrow): lowercase, punctuation -> space, one space."""
    out = texts
    if lowercase:
        out = pc.utf8_lower(out)
    # Replacing costs per match: the patterns leave alone what is already one plain space.
    if strip_punctuation and collapse_whitespace:
        out = pc.replace_substring_regex(out, pattern=_runs_not_one_space(_PUNCT + _WS, _PUNCT + _WS_NOT_SPACE), replacement=" ")
    elif strip_punctuation:
        out = pc.replace_substring_regex(out, pattern=f"[{_PUNCT}]+", replacement=" ")
    elif collapse_whitespace:
        out = pc.replace_substring_regex(out, pattern=_runs_not_one_space(_WS, _WS_NOT_SPACE), replacement=" ")
    if collapse_whitespace:
        out = pc.utf8_trim_whitespace(out)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _runs_not_one_space(chars: str, chars_but_space: str) -> str:
    """Runs of `chars` except a lone plain space: they either hold another character or are 2+ long."""
    return f"[{chars}]*[{chars_but_space}][{chars}]*| [{chars}]+"


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer: an avalanching bijection (wrap-around is intended)."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


class _Powers:
    """base^k and base^-k mod 2^64 for k < n, grown on demand and kept per process."""

    def __init__(self, base: np.uint64) -> None:
        self.base = base
        self.inverse = _U64(pow(int(base), -1, 2**64))
        self.up = np.ones(1, _U64)
        self.down = np.ones(1, _U64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.up.size < n:
            size = max(n, 2 * self.up.size)
            with np.errstate(over="ignore"):
                self.up = np.cumprod(np.concatenate([[_U64(1)], np.full(size - 1, self.base, _U64)]), dtype=_U64)
                self.down = np.cumprod(np.concatenate([[_U64(1)], np.full(size - 1, self.inverse, _U64)]), dtype=_U64)
        return self.up[:n], self.down[:n]


_BYTE_POWERS = _Powers(_BYTE_BASE)
_BYTE_POWERS_2 = _Powers(_U64(0xC2B2AE3D27D4EB4F))  # odd: the second half of `digest_strings`
_WORD_POWERS = _Powers(_WORD_BASE)


def _windows(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, powers: _Powers) -> np.ndarray:
    """sum_{t < len} values[s + t] * base^t for every window (s, len), from one prefix sum
    (values of any unsigned type: the product is taken in uint64 without a uint64 copy)."""
    up, down = powers.get(values.size + 1)
    prefix = np.empty(values.size + 1, _U64)
    prefix[0] = 0
    np.multiply(values, up[: values.size], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    out = prefix[starts + lengths]
    out -= prefix[starts]
    out *= down[starts]
    return out


def _string_bytes(strings: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets) of an Arrow string array: offsets[i]..offsets[i+1] are string i's bytes."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if strings.type != pa.large_string():
        strings = strings.cast(pa.large_string())
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64, count=n + 1, offset=strings.offset * 8)
    buf = strings.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, np.uint8)
    start = int(offsets[0])
    return data[start : int(offsets[-1])], offsets - start


def hash_strings(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of every string of an Arrow string array (null = empty), from its bytes alone."""
    data, offsets = _string_bytes(strings)
    lengths = np.diff(offsets)
    poly = _windows(data, offsets[:-1], lengths, _BYTE_POWERS)
    return fmix64(poly + lengths.astype(_U64) * _WORD_BASE)


def digest_strings(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """128-bit digest of every string (null = empty), shape (n, 2) uint64: `hash_strings` and a
    second polynomial hash over another base, for exact matching where 64 bits would collide
    (~n^2 / 2^65 pairs). Not cryptographic: polynomial hashes mod 2^64 can be made to collide on
    purpose (Thue-Morse strings), which costs a crafted page at most a wrong duplicate verdict."""
    data, offsets = _string_bytes(strings)
    lengths = np.diff(offsets)
    out = np.empty((lengths.size, 2), _U64)
    out[:, 0] = fmix64(_windows(data, offsets[:-1], lengths, _BYTE_POWERS) + lengths.astype(_U64) * _WORD_BASE)
    out[:, 1] = fmix64(_windows(data, offsets[:-1], lengths, _BYTE_POWERS_2) + lengths.astype(_U64) * _BYTE_BASE)
    return out


def word_spans(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, word_starts, word_lengths, words_per_text): words are runs of bytes above 0x20."""
    data, offsets = _string_bytes(texts)
    inside = data > 32  # ASCII space and control characters end a word
    before = np.zeros(data.size + 1, bool)  # before[i]: byte i-1 is inside a word of the same text
    before[1:] = inside
    before[offsets[:-1]] = False
    after = np.zeros(data.size + 1, bool)  # after[i]: byte i+1 is inside a word of the same text
    after[:-1] = np.concatenate([inside[1:], [False]]) if data.size else np.zeros(0, bool)
    after[offsets[1:] - 1] = False
    starts = np.flatnonzero(inside & ~before[:-1])
    ends = np.flatnonzero(inside & ~after[:-1]) + 1
    counts = np.diff(np.searchsorted(starts, offsets))
    return data, starts, ends - starts, counts


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every word n-gram of every (already normalised) text.

    Returns (hashes, doc_of_shingle): the shingles of a document are contiguous and documents come
    in order. A text with fewer than `ngram` words (but at least one) gives one shingle of all its
    words; a text without words gives none.
    """
    data, starts, lengths, counts = word_spans(texts)
    poly = _windows(data, starts, lengths, _BYTE_POWERS)
    words = fmix64(poly + lengths.astype(_U64) * _WORD_BASE)
    # shingle k of a document starts at its word k: ngram words, or all of them when it is shorter
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    doc = np.repeat(np.arange(counts.size), per_doc)
    first_word = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else np.zeros(0, np.int64)
    shingle_start = np.concatenate([[0], np.cumsum(per_doc)[:-1]]) if counts.size else np.zeros(0, np.int64)
    pos = np.arange(doc.size) - shingle_start[doc] + first_word[doc]
    width = np.minimum(counts, ngram)[doc]
    h = fmix64(_windows(words, pos, width, _WORD_POWERS) + width.astype(_U64))
    return (h ^ (h >> _U64(32))).astype(np.uint32), doc
