"""BERT's WordPiece tokenizer for the style encoder, built directly on the `tokenizers` library.

Upstream calls `AutoTokenizer.from_pretrained(bert_dir)`, which for a BERT directory builds
exactly this pipeline (BERT normalizer, BERT pre-tokenizer, WordPiece over `vocab.txt`,
`[CLS] ... [SEP]` around the text) inside `transformers`; importing that package costs about two
seconds of every server start. The settings `AutoTokenizer` would honour from
`tokenizer_config.json` are honoured here too; a `tokenizer.json` is used as is. The test suite
checks the ids against `AutoTokenizer` on the same directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from .errors import ModelLoadError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class Encoded:
    """One text's token ids, segment ids and attention mask (all the same length)."""

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]


class WordPieceTokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> Encoded:
        enc = self._tokenizer.encode(text)
        return Encoded(enc.ids, enc.type_ids, enc.attention_mask)


def _read_vocab(path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            token = line.rstrip("\n")
            vocab[token] = index  # a repeated token keeps its last index, as in transformers
    return vocab


def _tokenizer_settings(bert_dir: Path) -> dict[str, object]:
    path = bert_dir / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def load_wordpiece(bert_dir: Path, max_length: int) -> WordPieceTokenizer:
    """The tokenizer of a BERT directory; texts longer than `max_length` tokens are cut."""
    if (bert_dir / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(bert_dir / "tokenizer.json"))
    else:
        vocab_file = bert_dir / "vocab.txt"
        try:
            vocab = _read_vocab(vocab_file)
        except OSError as exc:
            raise ModelLoadError(f"BERT vocabulary {vocab_file} is unreadable: {exc}") from exc
        missing = [t for t in ("[UNK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise ModelLoadError(f"BERT vocabulary {vocab_file} lacks {', '.join(missing)}")
        settings = _tokenizer_settings(bert_dir)
        lowercase = bool(settings.get("do_lower_case", True))
        strip_accents = settings.get("strip_accents")
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
            strip_accents=None if strip_accents is None else bool(strip_accents),
            lowercase=lowercase,
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        tokenizer.add_special_tokens([t for t in SPECIAL_TOKENS if t in vocab])
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return WordPieceTokenizer(tokenizer)
