"""Our BERT encoder and WordPiece tokenizer against `transformers` (what upstream runs).

The server no longer imports `transformers` (two seconds of every start); these tests hold our
replacement to it: the same token ids for the same directory and text, and the same pooled
vector from the same weights. `transformers` is a development dependency for exactly this.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from emotivoice_tts import Synthesizer
from emotivoice_tts.bert import BertConfig
from emotivoice_tts.errors import ModelLoadError
from emotivoice_tts.layout import ModelLayout
from emotivoice_tts.style import MAX_BERT_TOKENS, load_tokenizer
from emotivoice_tts.wordpiece import load_wordpiece

TEXTS = [
    "Happy",
    "开心",
    "今天天气真好，我们去公园散步吧！",  # noqa: RUF001 (Chinese punctuation on purpose)
    "Emoti-Voice: a Multi-Voice and Prompt-Controlled TTS Engine.",
    "Café NAÏVE résumé, ÀÉÎÕÜ",
    "mixed 中英文 text with 123 numbers and 3.14",
    "  tabs\tand\nnewlines  ",
    "emoji 😀 and unknown ☃ symbols",
    "a literal [MASK] token and [CLS] too",
    "",
    "语" * 700,  # longer than BERT's 512 positions: cut, [SEP] kept
]


def _reference_tokenizer(bert_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(str(bert_dir))


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_token_ids_match_autotokenizer(synth: Synthesizer, text: str) -> None:
    bert_dir = synth.spec.layout.bert_dir
    ref = _reference_tokenizer(bert_dir)([text], truncation=True, max_length=MAX_BERT_TOKENS)
    ours = synth.tokenizer.encode(text)
    assert ours.input_ids == ref["input_ids"][0]
    assert ours.token_type_ids == ref["token_type_ids"][0]
    assert ours.attention_mask == ref["attention_mask"][0]
    assert len(ours.input_ids) <= MAX_BERT_TOKENS


def test_tokenizer_config_settings_are_honoured(small_model_dir: Path, tmp_path: Path) -> None:
    """do_lower_case false keeps case (ids differ from the default), like AutoTokenizer."""
    bert_dir = tmp_path / "bert"
    shutil.copytree(ModelLayout.discover(small_model_dir).bert_dir, bert_dir)
    vocab = (bert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (bert_dir / "vocab.txt").write_text("\n".join([*vocab, "HAPPY"]) + "\n", encoding="utf-8")
    text = "HAPPY happy"
    default = load_wordpiece(bert_dir, MAX_BERT_TOKENS).encode(text).input_ids
    (bert_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = load_wordpiece(bert_dir, MAX_BERT_TOKENS).encode(text).input_ids
    assert cased != default
    assert cased == _reference_tokenizer(bert_dir)(text)["input_ids"]


def test_repeated_vocabulary_entry_gets_the_same_id(small_model_dir: Path, tmp_path: Path) -> None:
    bert_dir = tmp_path / "bert"
    shutil.copytree(ModelLayout.discover(small_model_dir).bert_dir, bert_dir)
    vocab = (bert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (bert_dir / "vocab.txt").write_text("\n".join([*vocab, "happy"]) + "\n", encoding="utf-8")
    ours = load_wordpiece(bert_dir, MAX_BERT_TOKENS).encode("happy").input_ids
    assert ours == _reference_tokenizer(bert_dir)("happy")["input_ids"]
    assert len(vocab) in ours


def test_vocabulary_without_special_tokens_is_named(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"vocab\.txt lacks \[UNK\], \[CLS\], \[SEP\]"):
        load_wordpiece(tmp_path, MAX_BERT_TOKENS)


def _reference_bert(synth: Synthesizer) -> torch.nn.Module:
    bert_dir = synth.spec.layout.bert_dir
    config = transformers.BertConfig.from_pretrained(str(bert_dir))
    model = transformers.BertModel(config, add_pooling_layer=True).eval()
    state = {k.removeprefix("bert."): v for k, v in synth.style.state_dict().items()}
    result = model.load_state_dict(
        {k: v for k, v in state.items() if not k.endswith("_clf.classifier.weight")}, strict=False
    )
    assert not result.missing_keys, result.missing_keys
    return model


@torch.inference_mode()
def test_pooled_output_matches_transformers(synth: Synthesizer) -> None:
    reference = _reference_bert(synth)
    for text in TEXTS:
        enc = synth.tokenizer.encode(text)
        ids = torch.tensor([enc.input_ids])
        types = torch.tensor([enc.token_type_ids])
        mask = torch.tensor([enc.attention_mask])
        ours = synth.style(ids, types, mask)
        ref = reference(input_ids=ids, token_type_ids=types, attention_mask=mask).pooler_output
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_padded_batch_matches_transformers(synth: Synthesizer) -> None:
    """The attention mask is applied (a padded row gives what it gives alone)."""
    reference = _reference_bert(synth)
    short, long = synth.tokenizer.encode("开心"), synth.tokenizer.encode(TEXTS[2])
    pad = len(long.input_ids) - len(short.input_ids)
    ids = torch.tensor([short.input_ids + [0] * pad, long.input_ids])
    types = torch.zeros_like(ids)
    mask = torch.tensor([short.attention_mask + [0] * pad, long.attention_mask])
    ours = synth.style(ids, types, mask)
    ref = reference(input_ids=ids, token_type_ids=types, attention_mask=mask).pooler_output
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    n = len(short.input_ids)
    alone = synth.style(ids[:1, :n], types[:1, :n], mask[:1, :n])
    torch.testing.assert_close(ours[:1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_act": "swish"}, "hidden_act 'swish' is not supported"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"num_attention_heads": 5}, "not a multiple of num_attention_heads 5"),
        ({"vocab_size": "many"}, "no integer 'vocab_size'"),
    ],
)
def test_unsupported_bert_config_is_named(
    small_model_dir: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    source = ModelLayout.discover(small_model_dir).bert_dir / "config.json"
    data = {**json.loads(source.read_text()), **change}
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=message):
        BertConfig.read(tmp_path / "config.json")


def test_load_tokenizer_is_the_directorys_wordpiece(synth: Synthesizer) -> None:
    again = load_tokenizer(synth.spec.layout.bert_dir)
    assert again.encode(TEXTS[3]) == synth.tokenizer.encode(TEXTS[3])
