"""Vectorized MinHash: signatures, LSH band keys and compact sketches over whole Arrow batches.

Shingling is in `curate.dedup.text`. The signature is computed permutation first: for each of
the permutations one vectorized pass over all shingles of a cache-sized group of documents, then
`np.minimum.reduceat` per document, so no Python loop runs per document or shingle. The
permutation family is datasketch's "affine32" scheme (MurmurHash3 fmix32 pre-mix, then
h -> a*h + b mod 2^32 with the same seeded a, b), so given the same shingle hash values
datasketch produces bit-identical signatures: it is our reference in the tests.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.dedup.text import fmix64, hash_strings, normalize_text, shingle_hashes

__all__ = [
    "SignatureBuilder", "band_keys", "estimated_jaccard", "fmix32", "fmix64", "hash_strings", "normalize_text",
    "permutations", "shingle_hashes", "signatures", "sketch", "sketch_jaccard",
]

_U64 = np.uint64
_MIX = _U64(0x9E3779B97F4A7C15)
_EMPTY = np.uint32(0xFFFFFFFF)
# Shingles per pass: input and work array (2 x 256 KiB of uint32) stay in the L2 cache while
# all permutations run over them.
_CHUNK_SHINGLES = 1 << 16


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine32 permutations h -> a*h + b mod 2^32: a odd (bijective), drawn as datasketch does."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(hashes: np.ndarray, doc_of_shingle: np.ndarray, num_docs: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures, shape (num_docs, num_perm) uint32; a document without shingles keeps all 0xFFFFFFFF.

    `doc_of_shingle` must be non-decreasing (each document's shingles contiguous), as
    `shingle_hashes` returns them.
    """
    num_perm = a.size
    out = np.full((num_perm, num_docs), _EMPTY, np.uint32)  # permutation-major while filling
    if hashes.size:
        mixed = fmix32(hashes.astype(np.uint32, copy=False))
        run_start = np.flatnonzero(np.concatenate([[True], doc_of_shingle[1:] != doc_of_shingle[:-1]]))
        run_doc = doc_of_shingle[run_start]
        bounds = np.append(run_start, hashes.size)
        work = np.empty(min(hashes.size, max(_CHUNK_SHINGLES, 1)), np.uint32)
        r = 0
        while r < run_start.size:  # groups of whole documents, ~_CHUNK_SHINGLES shingles each
            r_end = max(int(np.searchsorted(bounds, bounds[r] + _CHUNK_SHINGLES, side="right")) - 1, r + 1)
            r_end = min(r_end, run_start.size)
            lo, hi = bounds[r], bounds[r_end]
            x = mixed[lo:hi]
            w = work[: hi - lo] if hi - lo <= work.size else np.empty(hi - lo, np.uint32)
            idx = run_start[r:r_end] - lo
            docs = run_doc[r:r_end]
            for p in range(num_perm):  # uint32 wrap-around is the mod 2^32
                np.multiply(x, a[p], out=w)
                np.add(w, b[p], out=w)
                out[p, docs] = np.minimum.reduceat(w, idx)
            r = r_end
    return np.ascontiguousarray(out.T)


def band_keys(sig: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """One int64 bucket key per (document, band): a hash of the band's rows salted by the band index."""
    n = sig.shape[0]
    bands = sig[:, : num_bands * rows_per_band].reshape(n, num_bands, rows_per_band).astype(_U64)
    h = np.broadcast_to(np.arange(num_bands, dtype=_U64) + _U64(1), (n, num_bands)).copy()
    for r in range(rows_per_band):
        h = fmix64(h * _MIX + bands[:, :, r])
    return h.view(np.int64)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature slots (row-wise for 2-D inputs)."""
    return np.mean(sig_a == sig_b, axis=-1)


def sketch(sig: np.ndarray) -> np.ndarray:
    """b-bit MinHash (b = 8): the low byte of every slot, (docs, num_perm) uint8, 4x smaller than the signature."""
    return (sig & np.uint32(0xFF)).astype(np.uint8)


def sketch_jaccard(sk_a: np.ndarray, sk_b: np.ndarray) -> np.ndarray:
    """Jaccard estimated from 8-bit sketches: equal bytes are equal slots or a 1-in-256 chance match,
    so P(equal) = J + (1 - J) / 256 (Li and Koenig, "b-Bit Minwise Hashing")."""
    match = np.mean(sk_a == sk_b, axis=-1)
    return np.clip((match - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)


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
