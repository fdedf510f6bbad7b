"""Text frontend: Chinese/English text -> EmotiVoice phoneme tokens, and sentence splitting."""

from .chinese import ChineseG2P
from .english import EnglishG2P, read_lexicon
from .mixed import MixedG2P
from .sentences import split_sentences

__all__ = ["ChineseG2P", "EnglishG2P", "MixedG2P", "read_lexicon", "split_sentences"]
