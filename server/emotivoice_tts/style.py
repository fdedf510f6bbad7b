"""The style/content encoder: a BERT (SimBERT) whose pooled output conditions the acoustic model.

EmotiVoice runs it twice per request: on the emotion prompt (style) and on the raw input text
(content). Only `pooler_output` is used; the classification heads are training artefacts kept so
that the released checkpoint loads strictly.

The released loader builds BERT from `pytorch_model.bin` and then overwrites every weight with the
style checkpoint. We build the BERT skeleton (our own `bert.BertModel`, the same key names) from
`config.json` without allocating (meta device) and load the style checkpoint's weights once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .bert import BertConfig, BertModel
from .wordpiece import WordPieceTokenizer, load_wordpiece

# Label files that size the training heads, in the released checkpoint's key order.
HEADS = ("pitch", "speed", "energy", "emotion")
STYLE_PROJ_DIM = 128
# BERT's hard limit on input length; longer text is cut (upstream would fail on it).
MAX_BERT_TOKENS = 512


class ClassificationHead(nn.Module):
    def __init__(self, hidden: int, labels: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(hidden, labels)


class StyleEncoder(nn.Module):
    def __init__(self, bert_config: BertConfig, head_sizes: dict[str, int]) -> None:
        super().__init__()
        self.bert = BertModel(bert_config)
        hidden = bert_config.hidden_size
        for name in HEADS:
            setattr(self, f"{name}_clf", ClassificationHead(hidden, head_sizes[name]))
        self.style_embed_proj = nn.Linear(hidden, STYLE_PROJ_DIM)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The pooled [CLS] vector, (B, hidden)."""
        return self.bert(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        )


def read_bert_config(bert_dir: Path) -> BertConfig:
    return BertConfig.read(bert_dir / "config.json")


def load_tokenizer(bert_dir: Path) -> WordPieceTokenizer:
    """The tokenizer upstream builds with AutoTokenizer on the BERT directory (same ids)."""
    return load_wordpiece(bert_dir, MAX_BERT_TOKENS)
