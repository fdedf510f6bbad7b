"""Where the files of a model live: EmotiVoice's released directory layout.

A model directory (what the fetch step downloads from the bucket prefix into the volume) holds the
tree that EmotiVoice's README tells users to assemble at the root of its repository::

    outputs/prompt_tts_open_source_joint/ckpt/g_00140000   generator: torch.save({'generator': sd})
                                                           (acoustic model `am.*` + HiFi-GAN
                                                           `generator.*`; weight-norm keys either
                                                           `weight_g/_v` or `parametrizations...`)
    outputs/prompt_tts_open_source_joint/ckpt/do_00140000  discriminator + optimisers (training
                                                           only; optional, never read)
    outputs/style_encoder/ckpt/checkpoint_163431           style encoder: {'model': sd}, every key
                                                           prefixed 'module.' (BERT + heads)
    WangZeJun/simbert-base-chinese/config.json             BERT shape
    WangZeJun/simbert-base-chinese/vocab.txt               BERT tokenizer vocabulary
    WangZeJun/simbert-base-chinese/pytorch_model.bin       initial BERT weights (optional here:
                                                           the style checkpoint overrides them all)
    config/joint/config.yaml                               model hyper-parameters
    data/youdao/text/tokenlist                             phoneme tokens, id = line index
    data/youdao/text/speaker2                              speaker names, id = line index
    data/youdao/text/{emotion,pitch,energy,speed}          label lists (sizes of the style
                                                           encoder's training heads)
    lexicon/librispeech-lexicon.txt                        English lexicon (word, ARPAbet phones)

Checkpoints are found like upstream finds them: the lexicographically last `g_` + 8 characters and
`checkpoint_` + 6 characters, so a new training step can be dropped in beside an old one.
Files we write ourselves (converted weights) use longer names that these patterns never match.

Behind the fetch step, "a file in the directory" is not enough: the completion marker lists the
files that were verified, and only those may be loaded. `discover(root, verified=...)` then picks
checkpoints among the verified names only and refuses a required file the marker does not list,
so a `g_99999999` planted beside the fetched checkpoint is never the one loaded.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError

GENERATOR_DIR = Path("outputs/prompt_tts_open_source_joint/ckpt")
GENERATOR_GLOB = "g_" + "?" * 8
STYLE_DIR = Path("outputs/style_encoder/ckpt")
STYLE_GLOB = "checkpoint_" + "?" * 6
BERT_DIR = Path("WangZeJun/simbert-base-chinese")
CONFIG_FILE = Path("config/joint/config.yaml")
TEXT_DIR = Path("data/youdao/text")
LEXICON_FILE = Path("lexicon/librispeech-lexicon.txt")
LABEL_FILES = ("emotion", "pitch", "energy", "speed")
# Which files a load reads: the serving files we convert to (written at the first start if
# missing), or the released checkpoints as they are. Here, in a module without torch, so that the
# server's flag parsing can use it.
LOAD_FORMATS = ("converted", "released")


@dataclass(frozen=True)
class ModelLayout:
    """Absolute paths of one model directory's files, resolved and checked once."""

    root: Path
    generator_ckpt: Path
    style_ckpt: Path
    bert_dir: Path
    config: Path
    tokenlist: Path
    speakers: Path
    lexicon: Path
    label_files: dict[str, Path]
    # Relative paths (POSIX) that the completion marker vouches for; None: every file counts
    # (a directory used without the fetch step, `--no-require-marker`).
    verified: frozenset[str] | None = None

    @classmethod
    def discover(cls, root: Path, verified: Collection[str] | None = None) -> ModelLayout:
        """Resolves every path; a missing file is a ModelLoadError naming it.

        With ``verified`` (relative paths from the completion marker), only those files count:
        checkpoints are chosen among them, and a required file outside them is an error.
        """
        root = Path(root)
        if not root.is_dir():
            raise ModelLoadError(f"model directory {root} does not exist")
        allowed = frozenset(verified) if verified is not None else None
        layout = cls(
            root=root,
            generator_ckpt=_last_match(root, GENERATOR_DIR, GENERATOR_GLOB, allowed),
            style_ckpt=_last_match(root, STYLE_DIR, STYLE_GLOB, allowed),
            bert_dir=root / BERT_DIR,
            config=root / CONFIG_FILE,
            tokenlist=root / TEXT_DIR / "tokenlist",
            speakers=root / TEXT_DIR / "speaker2",
            lexicon=root / LEXICON_FILE,
            label_files={name: root / TEXT_DIR / name for name in LABEL_FILES},
            verified=allowed,
        )
        required = [
            layout.config,
            layout.tokenlist,
            layout.speakers,
            layout.lexicon,
            layout.bert_dir / "config.json",
            layout.bert_dir / "vocab.txt",
            *layout.label_files.values(),
        ]
        missing = [str(p.relative_to(root)) for p in required if not p.is_file()]
        if missing:
            raise ModelLoadError(
                f"model directory {root} is incomplete (EmotiVoice's released layout expected)",
                missing=missing,
            )
        unverified = [str(p.relative_to(root)) for p in required if not layout.is_verified(p)]
        if unverified:
            raise ModelLoadError(
                f"model directory {root}: {', '.join(unverified[:5])} not listed in its "
                "completion marker (not fetched and verified by emotivoice-fetch); run the fetch "
                "step again"
            )
        return layout

    def is_verified(self, path: Path) -> bool:
        """Whether ``path`` (inside root) may be loaded: always without a marker's list."""
        if self.verified is None:
            return True
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return False
        return rel in self.verified

    def sources(self) -> dict[str, Path]:
        """The released weight files, by role; the converted format is keyed on these."""
        return {"generator": self.generator_ckpt, "style": self.style_ckpt}


def read_lines(path: Path) -> list[str]:
    """One label per line, stripped, as upstream reads them (a missing final newline is fine)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def _last_match(root: Path, folder: Path, pattern: str, verified: frozenset[str] | None) -> Path:
    matches = sorted((root / folder).glob(pattern))
    matches = [
        m
        for m in matches
        if m.is_file() and (verified is None or (folder / m.name).as_posix() in verified)
    ]
    if not matches:
        where = " among the files its completion marker lists" if verified is not None else ""
        raise ModelLoadError(f"model directory {root} has no checkpoint {folder / pattern}{where}")
    return matches[-1]
