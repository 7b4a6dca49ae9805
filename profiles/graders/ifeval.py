"""IFEval instruction verifiers, from the ``if-verifiable`` package (``bitrate[eval]``).

The verifiers are Google's IFEval checkers as packaged by ``if-verifiable``; we only
adapt them to run offline. Upstream, ``count_sentences`` uses NLTK's Punkt model and
one checker (``change_case:capital_word_frequency``) uses ``nltk.word_tokenize``;
both need NLTK data that must be downloaded, which this project never does. At one
place, :func:`_verifiers`, we patch the package's ``instructions_util`` module:

- sentences are split by the package's own rule-based ``split_into_sentences``
  (the splitter IFEval already uses for other checkers) instead of Punkt. They agree
  on ordinary prose; they can differ on unusual abbreviations and on text without
  end punctuation, which affects only ``length_constraints:number_sentences``.
- ``word_tokenize`` becomes that sentence splitter followed by NLTK's Treebank word
  tokenizer, which is what ``nltk.word_tokenize`` does after Punkt.
- ``langdetect`` is seeded (``DetectorFactory.seed = 0``) so language checks are
  deterministic, as langdetect's documentation recommends.
"""

from __future__ import annotations

import types
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from profiles.graders.base import Grader, register
from sdk.errors import DependencyMissing

if TYPE_CHECKING:
    from profiles.suites.item import Item

__all__ = ["IFEval"]


@cache
def _verifiers() -> tuple[dict[str, Any], Any]:
    """``(instruction registry, evaluate_instructions)`` with the offline patches applied."""
    try:
        import langdetect
        import nltk
        from if_verifiable.common import evaluate_instructions
        from if_verifiable.ifeval import INSTRUCTION_DICT, instructions_util
    except ImportError as exc:
        raise DependencyMissing(exc.name or "if_verifiable", "eval") from exc

    split = instructions_util.split_into_sentences
    treebank = nltk.tokenize.NLTKWordTokenizer()

    def word_tokenize(text: str) -> list[str]:
        return [token for sentence in split(text) for token in treebank.tokenize(sentence)]

    instructions_util.count_sentences = lambda text: len(split(text))
    # only the package's own reference to nltk is replaced, never the nltk module itself
    instructions_util.nltk = types.SimpleNamespace(
        tokenize=nltk.tokenize, data=nltk.data, word_tokenize=word_tokenize
    )
    langdetect.DetectorFactory.seed = 0
    return dict(INSTRUCTION_DICT), evaluate_instructions


@register
class IFEval(Grader):
    """Prompt-level IFEval: 1 when every instruction holds (``strict`` or ``loose``);
    ``partial`` gives the share of instructions that hold instead."""

    name = "ifeval"
    instruction_id_list: list[str] = Field(min_length=1)
    """Instruction ids such as ``punctuation:no_comma`` (an ``en:`` prefix is dropped)."""
    kwargs: list[dict[str, Any]]
    """One argument object per instruction, as in the IFEval data."""
    mode: Literal["strict", "loose"] = "strict"
    """IFEval's strict mode, or loose (also tries the answer without first/last line and ``*``)."""
    partial: bool = False
    """Score the share of instructions followed instead of all-or-nothing."""

    @model_validator(mode="after")
    def _known_instructions(self) -> IFEval:
        if len(self.kwargs) != len(self.instruction_id_list):
            raise ValueError("needs one kwargs object per instruction")
        registry, _ = _verifiers()
        unknown = [i for i in self.ids if i not in registry]
        if unknown:
            raise ValueError(f"unknown IFEval instruction(s): {', '.join(unknown)}")
        return self

    @property
    def ids(self) -> list[str]:
        """Instruction ids without a language prefix."""
        return [i.removeprefix("en:") for i in self.instruction_id_list]

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        registry, evaluate = _verifiers()
        _, scores = evaluate(answer, self.ids, self.kwargs, item.prompt_text, registry)
        key = f"{'partial' if self.partial else 'binary'}_{self.mode}"
        return float(getattr(scores, key))
