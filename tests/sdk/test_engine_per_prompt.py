"""Per-prompt routing through the engine: a mixed category whose easy prompts go to the student."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import yaml

from sdk.engine import Engine
from sdk.policy import load_policy
from sdk.profile import EvidenceItem, ModelIdentity, Profile, SuiteInfo, Tolerance
from sdk.protocol import ChatRequest
from tests.sdk.test_engine import category
from tests.support.fault_server import Ok, fault_server


def mixed_profile() -> Profile:
    """Category 'mixed' is unsafe overall (loss 0.5): greetings never break, multiplications always do."""
    rng = random.Random(0)
    evidence = []
    for i in range(80):
        name = "".join(rng.choice("abcdefgh") for _ in range(5))
        evidence.append(
            EvidenceItem(
                id=f"e{i}", category="mixed", prompt=f"mixed: say hello to {name}", student=1, frontier=1
            )
        )
        hard = f"mixed: multiply 83{i} by 97{i} and carry digits"
        evidence.append(EvidenceItem(id=f"h{i}", category="mixed", prompt=hard, student=0, frontier=1))
    return Profile(
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        method="import",
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["mixed"], sha256="0" * 64, n_items=160),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        categories={"mixed": category(80, 80, 0, 0, "unsafe")},
        evidence=evidence,
    )


async def test_per_prompt_sends_easy_prompts_of_an_unsafe_category_to_the_student(tmp_path):
    mixed_profile().save(tmp_path / "profile.json")
    with fault_server("stu") as student, fault_server("fro") as frontier:
        student.script(Ok("s"))
        frontier.script(Ok("f"))
        model = {"backend": "openai", "max_retries": 0, "transport": "httpx"}
        route = {
            "student": "student",
            "frontier": "frontier",
            "profile": "profile.json",
            "tolerance": {"max_loss": 0.05, "confidence": 0.9},
            "tasks": {"detect": ["rules"], "rules": [{"match": "^mixed:", "task": "mixed"}]},
        }
        policy = {
            "version": 1,
            "models": {
                "student": {**model, "base_url": student.base_url, "model": "stu"},
                "frontier": {**model, "base_url": frontier.base_url, "model": "fro"},
            },
            "routes": {"category": route, "prompt": {**route, "per_prompt": True}},
        }
        (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
        async with Engine(load_policy(tmp_path / "policy.yaml")) as engine:
            assert engine.routes()["prompt"].notes == []

            def ask(route_name: str, text: str):
                return engine.explain(
                    ChatRequest(model=route_name, messages=[{"role": "user", "content": text}])
                )

            easy, hard = "mixed: say hello to bob", "mixed: multiply 8377 by 9712 and carry digits"
            assert ask("category", easy).side == ask("category", hard).side == "frontier"  # unsafe category
            by_prompt = ask("prompt", easy)
            assert (by_prompt.side, by_prompt.rule, by_prompt.verdict) == ("student", "per_prompt", "safe")
            assert by_prompt.estimated_loss < ask("prompt", hard).estimated_loss
            assert ask("prompt", hard).side == "frontier"
            completion, decision = await engine.complete(
                ChatRequest(model="prompt", messages=[{"role": "user", "content": easy}])
            )
            assert completion.choices[0].message.content == "s" and decision.rule == "per_prompt"
