"""Writes a random-weight model in EmotiVoice's released on-disk layout, for tests and benchmarks.

Real weights cannot be downloaded where the project is built and tested, so the loading code is
exercised on models of the same architecture with seeded random weights:

- `small`: tiny widths (hidden 32, one layer per stack, a 32-wide HiFi-GAN, a 2-layer BERT), a few
  speakers; a few MB, written in about a second; what the unit tests load.
- `full`: the released dimensions (config.yaml values, 502 tokens, 2014 speakers, a
  SimBERT-base-shaped BERT with vocab 13685): ~1 GB with the BERT directory's own copy of the
  weights; what the benchmarks load.

Files are written exactly as the release has them: `g_00140000` as `{'generator': state_dict}`
with the legacy `weight_g`/`weight_v` weight-norm names (the release predates the parametrization
API), `checkpoint_163431` as `{'model': {'module.' + key: tensor}}` including the
`bert.embeddings.position_ids` buffer that transformers 4.26 saved, the BERT directory with
`config.json`, `vocab.txt` and `pytorch_model.bin`, the yaml config, token/speaker/label lists and
a lexicon. The token list, lexicon and BERT vocabulary are our own (generated from the phoneme
inventory, hand-written pronunciations); a real model directory brings its own.

The duration predictor's output bias is set so that each token lasts about 5 frames (80 ms, a
normal speaking rate; untrained weights would give 0-frame durations). In the full model its
weight is zero, exactly 5 frames per token, as in the upstream CPU baseline; in the small model a
small random weight makes durations vary around 5.

    python -m emotivoice_tts.testmodel small .models/small
    python -m emotivoice_tts.testmodel full .models/full --if-missing
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .bert import BertConfig
from .config import parse_config
from .jets import JetsModel
from .layout import (
    BERT_DIR,
    CONFIG_FILE,
    GENERATOR_DIR,
    LEXICON_FILE,
    STYLE_DIR,
    TEXT_DIR,
)
from .style import StyleEncoder
from .vocoder import LEGACY_G, LEGACY_V, PARAM_G, PARAM_V

GENERATOR_NAME = "g_00140000"
STYLE_NAME = "checkpoint_163431"
FRAMES_PER_TOKEN = 5

# The model section of EmotiVoice's config/joint/config.yaml (keys the inference path reads, plus
# a few it ignores, to show they are tolerated).
FULL_MODEL: dict[str, Any] = {
    "speaker_embed_dim": 384,
    "bert_embedding": 768,
    "lang_embed_dim": 0,
    "encoder_n_layers": 4,
    "encoder_n_heads": 8,
    "encoder_n_hidden": 384,
    "encoder_p_dropout": 0.2,
    "encoder_kernel_size_conv_mod": 3,
    "encoder_kernel_size_depthwise": 7,
    "decoder_n_layers": 4,
    "decoder_n_heads": 8,
    "decoder_n_hidden": 384,
    "decoder_p_dropout": 0.2,
    "decoder_kernel_size_conv_mod": 3,
    "decoder_kernel_size_depthwise": 31,
    "variance_n_hidden": 384,
    "variance_n_layers": 3,
    "variance_kernel_size": 3,
    "variance_p_dropout": 0.1,
    "variance_embed_kernel_size": 9,
    "variance_embde_p_dropout": 0.0,
    "duration_p_dropout": 0.5,
    "duration_n_layers": 2,
    "duration_kernel_size": 3,
    "postnet_layers": 0,
    "resblock": "1",
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "initial_channel": 80,
    "upsample_initial_channel": 512,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "r": 1,
}
FULL_TOP: dict[str, Any] = {
    "sr": 16000,
    "n_fft": 1024,
    "hop_length": 256,
    "win_length": 1024,
    "n_mels": 80,
    "segment_size": 32,
}
SMALL_OVERRIDES: dict[str, Any] = {
    "bert_embedding": 32,
    "encoder_n_layers": 1,
    "encoder_n_heads": 2,
    "encoder_n_hidden": 32,
    "decoder_n_layers": 1,
    "decoder_n_heads": 2,
    "decoder_n_hidden": 32,
    "variance_n_hidden": 32,
    "upsample_initial_channel": 32,
}
FULL_BERT = {
    "vocab_size": 13685,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
SMALL_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}

# Speaker names: the first four of the release (LibriTTS ids), then made-up ones.
FIRST_SPEAKERS = ["8051", "11614", "9017", "6097"]
LABELS = {
    "emotion": ["neutral", "happy", "sad", "angry", "surprise", "fear", "disgust"],
    "pitch": ["low", "normal", "high"],
    "energy": ["low", "normal", "high"],
    "speed": ["slow", "normal", "fast"],
}


@dataclass(frozen=True)
class Size:
    name: str
    model: dict[str, Any]
    bert: dict[str, Any]
    n_speakers: int
    n_tokens: int | None  # pad the token list to this many entries (the release has 502)
    duration_weight_std: float
    extra_tokens: list[str] = field(default_factory=list)


SIZES = {
    "small": Size("small", {**FULL_MODEL, **SMALL_OVERRIDES}, SMALL_BERT, 6, None, 0.02),
    "full": Size("full", FULL_MODEL, FULL_BERT, 2014, 502, 0.0),
}

# ---------------------------------------------------------------- phoneme inventory and lexicon


def _words(text: str) -> list[str]:
    return text.split()


ARPABET_VOWELS = _words("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW")
ARPABET_CONSONANTS = _words("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH")
PINYIN_INITIALS = _words("b p m f d t n l g k h j q x zh ch sh r z c s y")
PINYIN_FINALS = _words(
    "a o e ai ei ao ou an en ang eng ong er i ia ie iao iou ian in iang ing iong "
    "u ua uo uai uei uan uen uang ueng v ve van vn ii iii em"
)
SEPARATORS = [
    "sp0", "sp1", "sp2", "sp3", "sp4", "engsp0", "engsp1", "engsp2", "engsp4",
    "cn_eng_sp", "eng_cn_sp", "?", ".", "!", "spn", "[LAUGH]",
]  # fmt: skip

# Hand-written CMU-style pronunciations for the words the tests and benchmarks speak.
LEXICON = {
    "A": "AH0", "AND": "AH0 N D", "ARE": "AA1 R", "CAN": "K AE1 N", "DAY": "D EY1",
    "EMOTIONAL": "IH0 M OW1 SH AH0 N AH0 L", "ENGINE": "EH1 N JH AH0 N", "FOR": "F AO1 R",
    "GOOD": "G UH1 D", "HAPPY": "HH AE1 P IY0", "HELLO": "HH AH0 L OW1", "HOW": "HH AW1",
    "I": "AY1", "IS": "IH1 Z", "IT": "IH1 T", "MORNING": "M AO1 R N IH0 NG", "NICE": "N AY1 S",
    "OF": "AH1 V", "PROMPT": "P R AA1 M P T", "SAD": "S AE1 D", "SPEECH": "S P IY1 CH",
    "TEST": "T EH1 S T", "TEXT": "T EH1 K S T", "THE": "DH AH0", "THIS": "DH IH1 S",
    "TO": "T UW1", "TODAY": "T AH0 D EY1", "VERY": "V EH1 R IY0", "VOICE": "V OY1 S",
    "WEATHER": "W EH1 DH ER0", "WORLD": "W ER1 L D", "YOU": "Y UW1", "CONTROLLED": "K AH0 N T R OW1 L D",
    "MULTI": "M AH1 L T IY0",
}  # fmt: skip


def token_inventory() -> list[str]:
    """Every token our frontend can produce, in a fixed order (id = position)."""
    tokens = ["_", "<sos/eos>"]
    tokens += [f"[{v}{s}]" for v in ARPABET_VOWELS for s in "012"]
    tokens += [f"[{c}]" for c in ARPABET_CONSONANTS]
    tokens += PINYIN_INITIALS
    tokens += [f"{f}{t}" for f in PINYIN_FINALS for t in "12345"]
    tokens += [f"{f}r{t}" for f in PINYIN_FINALS if f not in ("er", "em") for t in "12345"]
    tokens += SEPARATORS
    return tokens


def bert_vocab(size: int | None) -> list[str]:
    """A character-level BERT vocabulary: specials, ASCII, letter pieces, then CJK characters."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [chr(c) for c in range(0x4E00, 0x9FA6)]
    vocab += ["\u3002", "\uff0c", "\uff01", "\uff1f", "\u3001"]
    if size is None:
        return vocab
    if len(vocab) < size:
        vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    return vocab[:size]


# ---------------------------------------------------------------------------------- writing


def write_model(out_dir: Path, size: str = "small", seed: int = 0) -> Path:
    """Writes the whole tree into a temporary sibling and renames it into place when complete."""
    spec = SIZES[size]
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_tree(tmp, spec, seed)
        # mkdtemp's 0700 would hide the model from a pod running as another uid (a hostPath, or
        # an upload read back by the fetch step); released models are readable by everyone.
        tmp.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write_tree(root: Path, size: Size, seed: int) -> None:
    torch.manual_seed(seed)
    tokens = token_inventory()
    if size.n_tokens is not None:
        if len(tokens) > size.n_tokens:
            raise AssertionError(f"inventory of {len(tokens)} exceeds {size.n_tokens}")
        tokens += [f"uncased{i}" for i in range(size.n_tokens - len(tokens))]
    speakers = FIRST_SPEAKERS + [str(20000 + i) for i in range(size.n_speakers - 4)]

    text_dir = root / TEXT_DIR
    text_dir.mkdir(parents=True)
    (text_dir / "tokenlist").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    # The release's speaker list has no final newline.
    (text_dir / "speaker2").write_text("\n".join(speakers), encoding="utf-8")
    for name, labels in LABELS.items():
        (text_dir / name).write_text("\n".join(labels) + "\n", encoding="utf-8")

    lexicon = root / LEXICON_FILE
    lexicon.parent.mkdir(parents=True)
    lexicon.write_text(
        "".join(f"{word}\t{phones}\n" for word, phones in sorted(LEXICON.items())),
        encoding="utf-8",
    )

    raw_config = {**FULL_TOP, "model": size.model}
    config_path = root / CONFIG_FILE
    config_path.parent.mkdir(parents=True)
    config_path.write_text(yaml.safe_dump(raw_config, sort_keys=False), encoding="utf-8")
    config = parse_config(raw_config, n_vocab=len(tokens), n_speaker=len(speakers))

    bert_dir = root / BERT_DIR
    bert_dir.mkdir(parents=True)
    vocab = bert_vocab(size.bert.get("vocab_size"))
    bert_config = BertConfig(**{**size.bert, "vocab_size": len(vocab)})
    (bert_dir / "config.json").write_text(
        json.dumps(bert_config.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    (bert_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")

    generator = JetsModel(config, weight_norm=True)
    _pin_durations(generator, size.duration_weight_std)
    g_state = {_legacy_weight_norm_key(k): v for k, v in generator.state_dict().items()}
    _save(root / GENERATOR_DIR / GENERATOR_NAME, {"generator": g_state})

    heads = {name: len(labels) for name, labels in LABELS.items()}
    style = StyleEncoder(bert_config, heads)
    _init_like_bert(style)
    s_state = dict(style.state_dict())
    s_state["bert.embeddings.position_ids"] = torch.arange(
        bert_config.max_position_embeddings
    ).expand(1, -1)
    _save(root / STYLE_DIR / STYLE_NAME, {"model": {"module." + k: v for k, v in s_state.items()}})
    bert_state = {k[len("bert.") :]: v for k, v in s_state.items() if k.startswith("bert.")}
    _save(bert_dir / "pytorch_model.bin", bert_state)


def _init_like_bert(module: torch.nn.Module) -> None:
    """BERT's own initialisation (normal 0.02, zero bias, unit LayerNorm), not PyTorch's default:
    random embeddings of unit scale would make every prompt's embedding nearly the same."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear | torch.nn.Embedding):
                sub.weight.normal_(0.0, 0.02)
            if isinstance(sub, torch.nn.Linear) and sub.bias is not None:
                sub.bias.zero_()
            if isinstance(sub, torch.nn.LayerNorm):
                sub.weight.fill_(1.0)
                sub.bias.zero_()


def _pin_durations(model: JetsModel, weight_std: float) -> None:
    linear = model.am.duration_predictor.linear
    with torch.no_grad():
        linear.weight.normal_(0.0, weight_std) if weight_std else linear.weight.zero_()
        linear.bias.fill_(math.log(1.0 + FRAMES_PER_TOKEN))


def _legacy_weight_norm_key(key: str) -> str:
    for new, old in ((PARAM_G, LEGACY_G), (PARAM_V, LEGACY_V)):
        if key.endswith(new):
            return key[: -len(new)] + old
    return key


def _save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Own storage per tensor (no views into shared buffers), as a training run would save it.
    torch.save(_detach(obj), path)


def _detach(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _detach(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone().contiguous()
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing when out_dir already exists"
    )
    args = parser.parse_args(argv)
    if args.if_missing and args.out_dir.is_dir():
        print(f"{args.out_dir} exists; kept")
        return 0
    write_model(args.out_dir, args.size, args.seed)
    print(json.dumps({"model_dir": str(args.out_dir), "size": args.size, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
