"""Caption rewriting for augmentation: back-translation and merged captions for audio mixes.

With an LLM endpoint configured (:class:`training.augment.llm.LLMClient`), a caption is translated into a
language and back to English (two cached requests), and the captions of two mixed clips are merged into
one by the model. Without one, the offline rule-based fallback paraphrases with synonyms and neutral
templates and merges with ``"A and B"`` / ``"A with B in the background"`` — and says so (a warning, and
``generator = "rules"`` in every augmented row and in the model card).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np

from training.augment.llm import LLMClient, LLMError
from training.augment.text_ops import SOUND_SYNONYMS, synonym_replacement

log = logging.getLogger(__name__)

SYSTEM = "You rewrite short descriptions of sounds. Answer with the requested text only, on one line."

#: Neutral templates of the rule-based paraphraser (``{c}`` is the caption without a final period).
PARAPHRASE_TEMPLATES = ("{c}", "the sound of {c}", "{c} can be heard", "a recording of {c}", "{c} is heard")


def _clean(text: str) -> str:
    text = text.strip().strip('"“”').strip()
    text = re.sub(r"\s+", " ", text.splitlines()[0] if text else "")
    return text.rstrip(".").strip()


class CaptionRewriter:
    """Back-translation and caption merging through an LLM, or the offline rules when none is configured."""

    def __init__(self, llm: LLMClient | None, synonyms: Mapping[str, Sequence[str]] | None = None) -> None:
        self.llm = llm if llm is not None and llm.available else None
        self.synonyms = SOUND_SYNONYMS if synonyms is None else synonyms
        if self.llm is None:
            log.warning(
                "no language-model endpoint configured (augment.llm.base_url): back-translations and merged "
                "captions come from the offline rule-based fallback"
            )

    @property
    def generator(self) -> str:
        """``"llm:<model>"`` or ``"rules"`` — recorded with every augmented caption."""
        return f"llm:{self.llm.config.model}" if self.llm is not None else "rules"

    # -- back-translation -----------------------------------------------------------------------------

    def back_translate(self, caption: str, language: str, rng: np.random.Generator) -> str:
        if self.llm is None:
            return rule_paraphrase(caption, rng, self.synonyms)
        foreign = _clean(
            self.llm.ask(f"Translate this description of a sound into {language}:\n{caption}", system=SYSTEM)
        )
        back = _clean(self.llm.ask(f"Translate this text into English:\n{foreign}", system=SYSTEM))
        if not back:
            raise LLMError(f"back-translation through {language} of {caption!r} came back empty")
        return back

    # -- merging --------------------------------------------------------------------------------------

    def merge(self, a: str, b: str, gain_db: float) -> str:
        """One caption for the mixture of a clip captioned ``a`` and one captioned ``b`` added at ``gain_db``."""
        if self.llm is None:
            return rule_merge(a, b, gain_db)
        level = "quieter than" if gain_db <= -3 else ("louder than" if gain_db >= 3 else "about as loud as")
        prompt = (
            "Two sounds play at the same time.\n"
            f"Sound A: {a}\nSound B ({level} sound A): {b}\n"
            "Write one short, fluent caption (at most 25 words) describing what is heard."
        )
        merged = _clean(self.llm.ask(prompt, system=SYSTEM))
        if not merged:
            raise LLMError(f"merging {a!r} and {b!r} came back empty")
        return merged


def rule_paraphrase(caption: str, rng: np.random.Generator, synonyms: Mapping[str, Sequence[str]]) -> str:
    """Offline paraphrase: one synonym swap (when possible) inside a neutral template."""
    c = _clean(caption)
    swapped = synonym_replacement(c, rng, synonyms)
    template = PARAPHRASE_TEMPLATES[int(rng.integers(1 if swapped == c else 0, len(PARAPHRASE_TEMPLATES)))]
    return template.format(c=swapped)


def rule_merge(a: str, b: str, gain_db: float) -> str:
    """Offline merge: ``"a with b in the background"`` when b is at least 6 dB down, else ``"a and b"``."""
    a, b = _clean(a), _clean(b)
    return f"{a} with {b} in the background" if gain_db <= -6 else f"{a} and {b}"
