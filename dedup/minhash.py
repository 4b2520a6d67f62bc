"""Vectorized MinHash: shingling, signatures and LSH band keys over whole Arrow batches.

No Python loop runs per word or per shingle: words are hashed with a polynomial hash computed
over the batch's UTF-8 bytes at once, shingles combine word hashes by shifted arrays, and the
signature is one (shingles x permutations) numpy product reduced per document with
`np.minimum.reduceat`. The permutation family is datasketch's "affine32" scheme (MurmurHash3
fmix32 pre-mix, then h -> a*h + b mod 2^32 with the same seeded a, b), so given the same shingle
hash values datasketch produces bit-identical signatures: it is our reference in the tests.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_U64 = np.uint64
_WORD_BASE = _U64(0x100000001B3)  # FNV prime: odd, so powers never collapse to 0 mod 2^64
_SHINGLE_MUL = _U64(0x9E3779B97F4A7C15)
# Shingles x permutations per numpy chunk: ~8 MB of uint32 work arrays, cache friendly.
_CHUNK_SHINGLES = 16_384


def normalize_text(texts: pa.Array | pa.ChunkedArray, lowercase: bool = True, strip_punctuation: bool = True,
                   collapse_whitespace: bool = True) -> pa.Array:
    """Normalise for comparison (vectorized in Arrow): lowercase, punctuation -> space, one space."""
    out = texts
    if lowercase:
        out = pc.utf8_lower(out)
    if strip_punctuation:
        out = pc.replace_substring_regex(out, pattern=r"[\p{P}\p{S}]+", replacement=" ")
    if collapse_whitespace:
        out = pc.utf8_trim_whitespace(pc.replace_substring_regex(out, pattern=r"\s+", replacement=" "))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer: an avalanching bijection (wrap-around is intended)."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def hash_strings(strings: pa.Array) -> np.ndarray:
    """64-bit hash of every string of an Arrow string array, computed over its bytes at once."""
    strings = strings.cast(pa.large_string()) if strings.type != pa.large_string() else strings
    n = len(strings)
    if n == 0:
        return np.zeros(0, _U64)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64, count=n + 1, offset=strings.offset * 8)
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8) if strings.buffers()[2] is not None else np.zeros(0, np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    data = data[start:end].astype(_U64)
    offsets = offsets - start
    lengths = np.diff(offsets)
    if data.size == 0:
        return fmix64(lengths.astype(_U64))
    # Polynomial hash sum(b_i * B^(len-1-i)): each byte's weight is a power given by its distance to the string end.
    max_len = int(lengths.max())
    powers = np.cumprod(np.concatenate([[1], np.full(max_len - 1, _WORD_BASE, _U64)]).astype(_U64), dtype=_U64) if max_len > 1 else np.ones(1, _U64)
    string_of_byte = np.repeat(np.arange(n), lengths)
    dist_to_end = offsets[1:][string_of_byte] - 1 - np.arange(data.size)
    weighted = (data + _U64(1)) * powers[dist_to_end]
    nonempty = lengths > 0
    sums = np.zeros(n, _U64)
    sums[nonempty] = np.add.reduceat(weighted, offsets[:-1][nonempty])
    return fmix64(sums ^ lengths.astype(_U64))


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every word n-gram of every (already normalised) text.

    Returns (hashes, doc_of_shingle), shingles of one document contiguous and documents in order.
    A text with fewer than `ngram` words (but at least one) gives one shingle of all its words; an
    empty text gives none.
    """
    words = pc.utf8_split_whitespace(texts)
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    words = words.cast(pa.large_list(pa.large_string()))
    counts = pc.list_value_length(words).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(words)
    doc_of_word = np.repeat(np.arange(len(counts)), counts)
    nonempty = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    if not nonempty.all():  # splitting "" (or text padded with spaces) yields empty words: not words
        flat, doc_of_word = flat.filter(pa.array(nonempty)), doc_of_word[nonempty]
        counts = np.bincount(doc_of_word, minlength=len(counts)).astype(np.int64)
    word_hash = hash_strings(flat)
    doc_start = np.concatenate([[0], np.cumsum(counts)])
    total = word_hash.size
    # Shingle i of a document starts at word i; valid while it fits, or once for short documents.
    pos_in_doc = np.arange(total) - doc_start[:-1][doc_of_word]
    valid = (pos_in_doc + ngram <= counts[doc_of_word]) | ((pos_in_doc == 0) & (counts[doc_of_word] < ngram))
    starts = np.flatnonzero(valid)
    doc_end = doc_start[1:][doc_of_word[starts]]
    h = np.zeros(starts.size, _U64)
    padded = np.concatenate([word_hash, np.zeros(ngram, _U64)])
    for k in range(ngram):  # loop over the n-gram width only, each step over all shingles
        idx = starts + k
        w = np.where(idx < doc_end, padded[idx], _U64(0))
        h = fmix64(h * _SHINGLE_MUL + w + _U64(k + 1))
    folded = (h ^ (h >> _U64(32))).astype(np.uint32)
    return folded, doc_of_word[starts]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine32 permutations h -> a*h + b mod 2^32: a odd (bijective), drawn as datasketch does."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(hashes: np.ndarray, doc_of_shingle: np.ndarray, num_docs: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures, shape (num_docs, num_perm) uint32; a document without shingles keeps all 0xFFFFFFFF."""
    sig = np.full((num_docs, a.size), np.uint32(0xFFFFFFFF), np.uint32)
    mixed = fmix32(hashes.astype(np.uint32))
    for lo in range(0, mixed.size, _CHUNK_SHINGLES):
        part = mixed[lo : lo + _CHUNK_SHINGLES]
        docs = doc_of_shingle[lo : lo + _CHUNK_SHINGLES]
        permuted = part[:, None] * a[None, :] + b[None, :]  # uint32 wrap-around is the mod 2^32
        run_starts = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
        mins = np.minimum.reduceat(permuted, run_starts, axis=0)
        run_docs = docs[run_starts]  # unique within a chunk, so fancy assignment is safe
        sig[run_docs] = np.minimum(sig[run_docs], mins)
    return sig


def band_keys(sig: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """One int64 bucket key per (document, band): a hash of the band's rows salted by the band index."""
    n = sig.shape[0]
    bands = sig[:, : num_bands * rows_per_band].reshape(n, num_bands, rows_per_band).astype(_U64)
    h = np.broadcast_to(np.arange(num_bands, dtype=_U64) + _U64(1), (n, num_bands)).copy()
    for r in range(rows_per_band):
        h = fmix64(h * _SHINGLE_MUL + bands[:, :, r])
    return h.view(np.int64)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature slots (row-wise for 2-D inputs)."""
    return np.mean(sig_a == sig_b, axis=-1)


class SignatureBuilder:
    """Normalise, shingle and sign one batch of texts with fixed settings."""

    def __init__(self, ngram: int = 5, num_perm: int = 112, seed: int = 1) -> None:
        self.ngram = ngram
        self.a, self.b = permutations(num_perm, seed)

    def __call__(self, texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(signatures, has_shingles) for the texts."""
        norm = normalize_text(texts)
        hashes, docs = shingle_hashes(norm, self.ngram)
        sig = signatures(hashes, docs, len(norm), self.a, self.b)
        has = np.zeros(len(norm), bool)
        has[docs] = True
        return sig, has
