"""The style/content encoder: a BERT (SimBERT) whose pooled output conditions the acoustic model.

EmotiVoice runs it twice per request: on the emotion prompt (style) and on the raw input text
(content). Only `pooler_output` is used; the classification heads are training artefacts kept so
that the released checkpoint loads strictly.

The released loader builds BERT from `pytorch_model.bin` and then overwrites every weight with the
style checkpoint. We build the BERT skeleton from `config.json` without allocating (meta device)
and load the style checkpoint's weights once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel

from .errors import ModelLoadError

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
        self.bert = BertModel(bert_config, add_pooling_layer=True)
        hidden = bert_config.hidden_size
        for name in HEADS:
            setattr(self, f"{name}_clf", ClassificationHead(hidden, head_sizes[name]))
        self.style_embed_proj = nn.Linear(hidden, STYLE_PROJ_DIM)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The pooled [CLS] vector, (B, hidden)."""
        out = self.bert(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        )
        return out.pooler_output

    def materialize_buffers(self, device: torch.device | str) -> None:
        """Rebuilds the non-persistent buffers that a meta-device construction leaves empty.

        transformers keeps `position_ids` and `token_type_ids` as computed buffers outside the
        state_dict; an unknown one means a transformers version we have not seen, said clearly.
        """
        for name, buf in list(self.named_buffers()):
            if not buf.is_meta:
                continue
            module_name, _, attr = name.rpartition(".")
            module = self.get_submodule(module_name)
            if attr == "position_ids":
                value = torch.arange(buf.shape[-1], device=device).expand(buf.shape)
            elif attr == "token_type_ids":
                value = torch.zeros(buf.shape, dtype=torch.long, device=device)
            else:
                raise ModelLoadError(
                    f"BERT buffer {name!r} is not in the checkpoint and cannot be rebuilt; "
                    "this transformers version is not supported"
                )
            module.register_buffer(attr, value.contiguous(), persistent=False)


def read_bert_config(bert_dir: Path) -> BertConfig:
    try:
        return BertConfig.from_pretrained(str(bert_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"BERT config in {bert_dir} is unreadable: {exc}") from exc


def load_tokenizer(bert_dir: Path):  # -> PreTrainedTokenizerBase
    """The tokenizer exactly as upstream builds it (AutoTokenizer on the BERT directory)."""
    try:
        return AutoTokenizer.from_pretrained(str(bert_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"BERT tokenizer in {bert_dir} is unreadable: {exc}") from exc
