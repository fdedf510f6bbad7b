"""EmotiVoice inference in PyTorch, loading EmotiVoice's released checkpoints (no web code here).

    synth = load_synthesizer(Path("/models/emotivoice"), precision="fp16")
    audio = synth.synthesize("你好, 世界", speaker="8051", prompt="开心")  # float32, 16 kHz

See `layout` for the model directory, `convert` for the fast-start serving files.
"""

from .config import PRECISIONS
from .convert import convert_for_serving
from .errors import EmptyInputError, ModelLoadError, UnknownSpeakerError, UnknownTokenError
from .synthesizer import Synthesizer, default_device, load_synthesizer

__all__ = [
    "PRECISIONS",
    "EmptyInputError",
    "ModelLoadError",
    "Synthesizer",
    "UnknownSpeakerError",
    "UnknownTokenError",
    "convert_for_serving",
    "default_device",
    "load_synthesizer",
]
