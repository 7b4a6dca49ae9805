"""sdk.Client on the shipped embedded pair: the routed answer is the chosen model's own greedy answer."""

from __future__ import annotations

import asyncio

import pytest

import sdk
from sdk import embedded
from sdk.backends import make_backend
from sdk.policy import default_policy
from sdk.profile import load_profile
from sdk.protocol import ChatRequest

pytestmark = pytest.mark.skipif(
    not (embedded.model_dir("student") / "config.json").is_file() or not embedded.profile_path().is_file(),
    reason="the embedded pair (sdk/embedded/student, teacher, profile.json) has not landed",
)

GREEDY = {"temperature": 0, "max_tokens": 16}
PROMPTS = ["uppercase: abc", "reverse: abcde", "copy: hello", "double: abc", "largest: 3 9 4", "sort: dcba"]


@pytest.fixture(scope="module")
def fast_policy():
    """The default policy with detection by hint and rules only (the tiny prompts all match a rule),
    so the test does not embed the profile's evidence."""
    policy = default_policy()
    route = policy.routes["auto"]
    route.tasks.detect = ["hint", "rules"]
    return policy


@pytest.fixture(scope="module")
def client(fast_policy):
    with sdk.Client(policy=fast_policy) as c:
        yield c


def direct(policy, target: str, prompt: str) -> str:
    async def run() -> str:
        backend = make_backend(target, policy.models[target])
        try:
            request = ChatRequest(model=target, messages=[{"role": "user", "content": prompt}], **GREEDY)
            return (await backend.complete(request)).choices[0].message.content
        finally:
            await backend.close()

    return asyncio.run(run())


def test_routes_follow_the_shipped_profile_and_answers_equal_the_chosen_model(client, fast_policy):
    tol = fast_policy.routes["auto"].tolerance
    verdicts = load_profile(embedded.profile_path()).verdicts(tol.max_loss, tol.confidence)
    sides = set()
    for prompt in PROMPTS:
        completion = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": prompt}], **GREEDY
        )
        decision = completion.bitrate
        expected = {"safe": "student", "unsafe": "frontier"}.get(verdicts.get(decision.task), "frontier")
        assert decision.side == expected, decision.reason
        assert completion.choices[0].message.content == direct(fast_policy, decision.target, prompt)
        sides.add(decision.side)
    assert sides == {"student", "frontier"}  # the pair is lossy on some tasks, not on others


def test_streaming_on_the_embedded_pair(client, fast_policy):
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "reverse: abcde"}], stream=True, **GREEDY
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == direct(fast_policy, stream.bitrate.target, "reverse: abcde")


@pytest.mark.slow
def test_client_without_arguments_runs_the_default_policy():
    with sdk.Client() as client:
        completion = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "copy: abc"}], **GREEDY
        )
    assert completion.bitrate.route == "auto" and completion.bitrate.task == "copy"
    assert completion.choices[0].message.content
