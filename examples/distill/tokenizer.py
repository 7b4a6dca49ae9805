"""A character-level tokenizer for the embedded pair, built with ``tokenizers``.

Every printable ASCII character (newline and tab included) is one token (so ``decode(encode(x)) == x``,
spaces included); four special tokens frame the chat. The chat template renders

    <|user|>reverse: abc<|end|><|assistant|>

and the model answers ``cba<|end|>``: ``<|end|>`` is the EOS token.
"""

from __future__ import annotations

import string
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "EOS", "PAD", "SPECIALS", "build_tokenizer", "save_tokenizer"]

PAD = "<|pad|>"
EOS = "<|end|>"
SPECIALS = (PAD, EOS, "<|system|>", "<|user|>", "<|assistant|>")
UNK = "<|unk|>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
"""Jinja chat template: each message as ``<|role|>content<|end|>``, then the
assistant marker when a generation prompt is asked for."""


def _charset() -> list[str]:
    # printable ASCII plus newline and tab; other characters become <|unk|>
    return [c for c in string.printable if c not in "\r\x0b\x0c"]


def build_tokenizer(model_max_length: int = 128):
    """A ``PreTrainedTokenizerFast`` over single characters with the chat template set."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIALS, UNK, *_charset()])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=None,
        additional_special_tokens=list(SPECIALS[2:]),
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer, out_dir: Path) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` (with ``chat_template``)."""
    import json

    tokenizer.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    # keep the template inside tokenizer_config.json, where every loader looks
    cfg["chat_template"] = CHAT_TEMPLATE
    # portable across transformers 4.x (vLLM images) and 5.x: the generic fast class,
    # and the chat markers stay special through tokenizer.json alone
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("extra_special_tokens", None)
    cfg.pop("backend", None)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    jinja = out_dir / "chat_template.jinja"
    if jinja.exists():
        jinja.unlink()
