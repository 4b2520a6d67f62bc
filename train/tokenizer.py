"""Byte-level BPE: trained on a sample of the pool with `tokenizers`, or loaded from tokenizer.json.

The tokenizer is wrapped in transformers' fast-tokenizer class and saved next to the model, so
`AutoTokenizer.from_pretrained(model_dir)` gives back exactly what training used.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE (every byte is representable, so nothing maps to UNK)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    if tok.token_to_id(EOS) is None:
        tok.add_special_tokens([EOS])
    if tok.token_to_id(PAD) is None:
        tok.add_special_tokens([PAD])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer.json, or a folder holding one (e.g. a model saved by this trainer)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer not found: {path}")
    return wrap(Tokenizer.from_file(str(path)))


def encode_batch(tok: PreTrainedTokenizerFast, texts: list[str]) -> list[list[int]]:
    """Token ids per text, no special tokens (the packer adds EOS between documents).

    Uses the Rust tokenizer's parallel batch encoder directly: the Python wrapper's padding and
    tensor bookkeeping would cost more than the encoding itself.
    """
    backend: Tokenizer = tok.backend_tokenizer
    return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
