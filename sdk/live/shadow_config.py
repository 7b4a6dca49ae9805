"""A route's ``shadow:`` section: which live requests the other side also answers, within which
limits, and how each pair is graded without a reference. Off unless ``rate`` or ``spot_check``
is set::

    routes:
      auto:
        shadow:
          rate: 0.05                # 5% of frontier-served requests: the student answers too
          spot_check: 0.02          # 2% of student-served requests: the frontier answers too
          max_concurrency: 4        # shadow calls in flight at once (this route, each replica)
          max_spend_per_hour: 2.0   # dollars of frontier and judge calls per hour (each replica)
          categories: [math, extraction]          # default: every category
          grader: {kind: agreement, mode: normalised}
          graders: {extraction: {kind: json_valid}}   # per category, instead of `grader`
          judge: frontier           # the judge grader's model (default: the route's frontier)
          auto_promote: false
          queue_size: 256

Graders (``kind``), each giving a pair of scores ``(s, f)`` in [0, 1] (``sdk.live.graders``):

============ =================================================================================
kind         scores
============ =================================================================================
agreement    ``f = 1``; ``s = 1`` when the student's answer equals the frontier's (``mode``:
             ``exact``, ``normalised``, ``numeric``, ``json``)
json_valid   each side 1 when its answer is JSON (valid against the request's ``json_schema``
             when it has one and ``jsonschema`` is installed)
numeric      the last number of each answer: ``f = 1`` when the frontier wrote one, ``s = 1`` when
             the student wrote the same one (or wrote one where the frontier wrote none)
judge        a judge model compares the two answers in both orders; ties allowed; ``f`` and ``s``
             are the shares of orders each side won, so ``f - s`` is breaks minus fixes
embedding    ``f = 1``; ``s = 1`` when the answers' embeddings' cosine >= ``threshold`` (needs
             ``bitrate[embeddings]``)
============ =================================================================================
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import Field

from sdk.config_model import StrictModel
from sdk.yaml_config import Problem

__all__ = [
    "AgreementGrader",
    "EmbeddingGrader",
    "GraderConfig",
    "JsonValidGrader",
    "JudgeGrader",
    "NumericGrader",
    "ShadowConfig",
    "shadow_problems",
]

AgreementMode = Literal["exact", "normalised", "numeric", "json"]


class AgreementGrader(StrictModel):
    """The frontier's answer is the reference: the student scores 1 when it agrees, the frontier 1."""

    kind: Literal["agreement"]
    """Selects this grader."""
    mode: AgreementMode = "normalised"
    """How answers are compared: ``exact`` (stripped text), ``normalised`` (case, punctuation and
    spacing ignored), ``numeric`` (the last number of each, within ``abs_tol``), ``json`` (equal
    once parsed; an answer that is not JSON agrees with nothing)."""
    abs_tol: float = Field(default=1e-6, ge=0)
    """For ``numeric``: largest difference that still agrees."""


class JsonValidGrader(StrictModel):
    """Each side scores 1 when its answer parses as JSON and, when the request carries a
    ``json_schema`` response format, validates against it (that part needs ``jsonschema``:
    ``pip install 'bitrate[checks]'``)."""

    kind: Literal["json_valid"]
    """Selects this grader."""
    schema_check: bool = True
    """Also validate against the request's ``json_schema`` when it has one."""


class NumericGrader(StrictModel):
    """The last number of each answer, compared: the frontier scores 1 when it wrote one; the
    student scores 1 when it wrote the frontier's number within the tolerances (or any number
    where the frontier wrote none). Neither wrote one: both 1 (nothing to tell them apart)."""

    kind: Literal["numeric"]
    """Selects this grader."""
    abs_tol: float = Field(default=1e-6, ge=0)
    """Absolute tolerance."""
    rel_tol: float = Field(default=0.0, ge=0)
    """Relative tolerance (0.01 = 1%)."""


class JudgeGrader(StrictModel):
    """A judge model (``shadow.judge``, default the route's frontier) compares the two answers,
    once with the student's first and once with the frontier's first (position bias cancels);
    each order says A, B or a tie. ``f`` and ``s`` are the shares of the two orders that the
    frontier and the student won: live loss ``f - s`` is P(frontier better) - P(student better)."""

    kind: Literal["judge"]
    """Selects this grader."""
    max_chars: int = Field(default=4000, ge=100)
    """Each answer and the conversation are cut to this many characters in the judge's prompt."""


class EmbeddingGrader(StrictModel):
    """The frontier's answer is the reference: the student scores 1 when the cosine similarity of
    the two answers' embeddings (all-MiniLM-L6-v2) is at least ``threshold``. Needs
    ``pip install 'bitrate[embeddings]'`` (checked when the gateway starts)."""

    kind: Literal["embedding"]
    """Selects this grader."""
    threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    """Smallest cosine similarity that counts as agreeing."""


GraderConfig = Annotated[
    AgreementGrader | JsonValidGrader | NumericGrader | JudgeGrader | EmbeddingGrader,
    Field(discriminator="kind"),
]
"""How a live pair is graded without a reference (see the module docstring)."""


def _default_grader() -> GraderConfig:
    return AgreementGrader(kind="agreement")


class ShadowConfig(StrictModel):
    """Live evidence for one route: a share of requests answered by both sides in the background
    (never in the caller's way), graded, and fed to the live monitor. Needs the policy's ``live:``."""

    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of frontier-served requests also answered by the student in the background
    (evidence for promoting a category). 0: none."""
    spot_check: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of student-served requests also answered by the frontier in the background
    (evidence for keeping or demoting a category). 0: none."""
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    """Most shadow calls in flight at once for this route, in each replica."""
    max_spend_per_hour: float | None = Field(default=1.0, ge=0)
    """Dollars that shadow calls to the frontier and the judge may cost per hour (a sliding hour,
    counted per replica at the models' ``price`` from each answer's usage); a request sampled
    past it is dropped and counted. null: no cap."""
    categories: list[str] | None = None
    """Only these task categories are shadowed; null: every category the route knows."""
    grader: GraderConfig = Field(default_factory=_default_grader)
    """How pairs are graded (default: agreement, normalised)."""
    graders: dict[str, GraderConfig] = Field(default_factory=dict)
    """Per category, a grader used instead of ``grader``."""
    judge: str | None = None
    """The model (a key of ``models``) the ``judge`` grader asks; null: the route's frontier."""
    auto_promote: bool = False
    """End a live demotion when live evidence certifies the category again; false: only a person
    ends it (``bitrate profile live --reset ROUTE:CATEGORY``)."""
    queue_size: int = Field(default=256, ge=1, le=1_000_000)
    """Shadow jobs waiting for a free slot, at most; a job arriving at a full queue is dropped
    and counted (a caller never waits)."""

    @property
    def enabled(self) -> bool:
        """True when some traffic is shadowed or spot-checked."""
        return self.rate > 0.0 or self.spot_check > 0.0

    def grader_for(self, category: str) -> GraderConfig:
        """The grader of ``category``."""
        return self.graders.get(category, self.grader)

    def includes(self, category: str) -> bool:
        """Whether ``category`` is shadowed (``categories`` unset: all)."""
        return self.categories is None or category in self.categories

    def uses_judge(self) -> bool:
        """True when some category is graded by the judge."""
        return any(g.kind == "judge" for g in (self.grader, *self.graders.values()))


def shadow_problems(
    route: str, shadow: ShadowConfig, models: Collection[str], *, has_live: bool
) -> list[Problem]:
    """What does not hold in a route's ``shadow`` section against the rest of the policy: shadow
    traffic without a ``live:`` section (nowhere to keep the evidence), a judge that is no model."""
    problems: list[Problem] = []
    where = ("routes", route, "shadow")
    if shadow.enabled and not has_live:
        message = "shadow traffic needs the policy's `live:` section (where observations are kept)"
        problems.append((where, message))
    if shadow.judge is not None and shadow.judge not in models:
        known = ", ".join(sorted(models))
        problems.append(((*where, "judge"), f"no model named '{shadow.judge}' (models: {known})"))
    return problems
