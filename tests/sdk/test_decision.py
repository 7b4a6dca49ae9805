"""Decision.to_meta is built by hand for speed: it must stay equal to the dataclass's own fields."""

from __future__ import annotations

import dataclasses

from sdk.decision import Decision


def test_to_meta_has_every_field_in_order_and_equals_asdict():
    decision = Decision(
        route="auto",
        target="student",
        side="student",
        task="copy",
        task_source="rule",
        task_confidence=1.0,
        verdict="safe",
        estimated_loss=0.01,
        rule="verdict",
        reason="why",
        fallback_from="frontier",
        escalated=True,
    )
    meta = decision.to_meta()
    assert list(meta) == [f.name for f in dataclasses.fields(Decision)]
    assert meta == dataclasses.asdict(decision)
