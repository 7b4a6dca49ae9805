"""sdk.backends.sampling: request -> spec, stop strings over a stream, incremental decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdk.backends.sampling import (
    GenerationDefaults,
    IncrementalDecoder,
    StopMatcher,
    check_text_only,
    sampling_spec,
)
from sdk.errors import InvalidRequest
from sdk.protocol import ChatRequest

DEFAULTS = GenerationDefaults(do_sample=True, temperature=0.7, top_p=0.9, top_k=40)


def req(**fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def spec_of(request: ChatRequest, prompt_tokens: int = 10, context: int | None = 100):
    return sampling_spec(
        request, defaults=DEFAULTS, default_max_tokens=50, prompt_tokens=prompt_tokens, context=context
    )


def test_temperature_zero_is_greedy_and_none_takes_model_defaults():
    assert spec_of(req(temperature=0)).greedy
    spec = spec_of(req())
    assert (spec.greedy, spec.temperature, spec.top_p, spec.top_k) == (False, 0.7, 0.9, 40)
    assert spec_of(req(temperature=1.2, top_p=0.5)).temperature == 1.2
    assert spec_of(req(top_p=0.5)).top_p == 0.5
    greedy_model = GenerationDefaults(do_sample=False)
    assert sampling_spec(
        req(), defaults=greedy_model, default_max_tokens=5, prompt_tokens=1, context=None
    ).greedy


def test_token_limit_prefers_max_completion_tokens_and_clamps_to_context():
    assert spec_of(req()).max_new_tokens == 50
    assert spec_of(req(max_tokens=7)).max_new_tokens == 7
    assert spec_of(req(max_tokens=7, max_completion_tokens=9)).max_new_tokens == 9
    assert spec_of(req(max_tokens=500), prompt_tokens=90, context=100).max_new_tokens == 10
    assert spec_of(req(max_tokens=500), context=None).max_new_tokens == 500


def test_prompt_that_fills_the_context_is_refused():
    with pytest.raises(InvalidRequest, match="context is 100 tokens") as info:
        spec_of(req(), prompt_tokens=100, context=100)
    assert info.value.code == "context_length_exceeded"


def test_top_logprobs_without_logprobs_is_refused():
    with pytest.raises(InvalidRequest):
        spec_of(req(top_logprobs=3))
    assert spec_of(req(logprobs=True, top_logprobs=3)).top_logprobs == 3


def test_images_and_tools_are_refused_by_text_models():
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(InvalidRequest, match="cannot read 'image_url'"):
        check_text_only(ChatRequest(model="m", messages=[{"role": "user", "content": [image]}]), "student")
    tool = {"type": "function", "function": {"name": "f"}}
    with pytest.raises(InvalidRequest, match="cannot call tools"):
        check_text_only(req(tools=[tool]), "student")
    check_text_only(req(messages=[{"role": "user", "content": [{"type": "text", "text": "ok"}]}]), "s")


def run_stops(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    shown = []
    for piece in pieces:
        shown.append(matcher.feed(piece))
        if matcher.stopped:
            return "".join(shown), True
    return "".join(shown) + matcher.flush(), False


def test_stop_string_split_across_pieces_is_never_shown():
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abc ST") == "abc "
    assert matcher.feed("O") == ""
    assert matcher.feed("P and more") == ""
    assert matcher.stopped


def test_held_text_is_released_when_it_cannot_become_a_stop():
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("x ST") == "x "
    assert matcher.feed("ay") == "STay"
    assert not matcher.stopped


@given(
    text=st.text(alphabet="abcS TOP", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
    stops=st.lists(st.text(alphabet="abcS TOP", min_size=1, max_size=4), min_size=1, max_size=3),
)
def test_stop_matching_equals_cutting_the_whole_text(text: str, cuts: list[int], stops: list[str]):
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    shown, stopped = run_stops(pieces, stops)
    assert stopped == any(s in text for s in stops)
    assert not any(s in shown for s in stops), "stop text is never shown"
    if stopped:
        assert text.startswith(shown)
        assert any(text[len(shown) :].startswith(s) for s in stops), "cut right before a stop string"
    else:
        assert shown == text


def test_incremental_decoder_waits_for_whole_characters():
    data = "hé€!".encode()
    decoder = IncrementalDecoder(lambda ids: bytes(ids).decode("utf-8", errors="replace"))
    pieces = [decoder.push(b) for b in data]
    assert "".join(pieces) == "hé€!"
    assert "" in pieces, "partial characters produce no text until complete"
