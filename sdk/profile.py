"""The capability profile file: schema, loading and atomic saving.

A profile says, per task category, how much quality is lost when the student
answers instead of the frontier, with a confidence interval, and whether the
student is ``safe``, ``uncertain`` or ``unsafe`` there (see ``sdk.stats`` for
the conventions). It is JSON, versioned by ``schema_version``; ``load_profile``
rejects versions it does not know. Built by ``profiles.assemble``; read by the
router.

The figures are checked wherever a profile is made or loaded: every number finite,
shares in [0, 1], losses in [-1, 1], ``loss_low <= loss_high`` (and, for Newcombe
intervals, ``loss`` between them), counts that add up to ``n``, and no ``safe`` verdict
that the interval at the profile's tolerance does not give. The router reads verdicts
from the interval at the route's tolerance, never the stored word; a stored verdict more
cautious than its interval is accepted (it misleads nobody into sending traffic to the student).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from sdk.config_model import StrictModel
from sdk.errors import ConfigError
from sdk.stats import PairedCounts, VerdictName, newcombe_paired_interval, verdict, z_two_sided
from sdk.textfile import read_text

__all__ = [
    "SCHEMA_VERSION",
    "CategoryStats",
    "Counts",
    "EvidenceItem",
    "ModelIdentity",
    "Profile",
    "StudentConfidence",
    "SuiteInfo",
    "Tolerance",
    "load_profile",
]

SCHEMA_VERSION = 1
_SLACK = 1e-9
"""Float rounding allowed when the figures are compared with each other."""
_DEFER = "defer_checks"
"""Validation context key: skip the cross-field checks (``load_profile`` runs them to name the key)."""
Problem = tuple[tuple[str, ...], str]
"""A figure that contradicts another: ``(key path, message)``."""


class _Figures(StrictModel):
    """A part of the profile file: numbers must be finite (JSON's NaN and Infinity are refused)."""

    model_config = ConfigDict(allow_inf_nan=False)


class ModelIdentity(StrictModel):
    """Which model played a side when the profile was measured."""

    name: str
    """The policy's name for the model (e.g. 'student')."""
    model: str | None = None
    """The model id or path the backend served."""
    backend: str | None = None
    """Backend kind ('openai', 'transformers', 'vllm'), or 'import'."""


class SuiteInfo(_Figures):
    """The probe items the profile was measured on."""

    names: list[str]
    """Suite names (or the outcomes file name for an import)."""
    sha256: str
    """SHA-256 of the suite content, so two profiles can be compared."""
    n_items: int = Field(ge=0)
    """Number of items measured."""


class Tolerance(_Figures):
    """How much loss is acceptable and how sure we must be."""

    max_loss: float = Field(ge=0.0, le=1.0)
    """Largest acceptable mean loss (f - s), e.g. 0.02."""
    confidence: float = Field(gt=0.0, lt=1.0)
    """Two-sided level of the loss interval (0.90: each verdict holds one-sided at 95%)."""


class Counts(_Figures):
    """The paired 2x2 table, present when every score was 0 or 1."""

    both: int = Field(ge=0)
    """Items both models got right."""
    breaks: int = Field(ge=0)
    """Items the frontier got right and the student got wrong."""
    fixes: int = Field(ge=0)
    """Items the student got right and the frontier got wrong."""
    neither: int = Field(ge=0)
    """Items both models got wrong."""

    def as_paired(self) -> PairedCounts:
        """The same table as ``sdk.stats.PairedCounts``."""
        return PairedCounts(both=self.both, breaks=self.breaks, fixes=self.fixes, neither=self.neither)


class CategoryStats(_Figures):
    """What the profile knows about one task category."""

    n: int = Field(ge=1)
    """Number of items measured in the category."""
    student_accuracy: float = Field(ge=0.0, le=1.0)
    """Mean student score, in [0, 1]."""
    frontier_accuracy: float = Field(ge=0.0, le=1.0)
    """Mean frontier score, in [0, 1]."""
    retention: float | None = Field(default=None, ge=0.0)
    """student_accuracy / frontier_accuracy; null when the frontier scored 0."""
    loss: float = Field(ge=-1.0, le=1.0)
    """Mean of f - s: quality lost when the student answers, in [-1, 1]."""
    loss_low: float = Field(ge=-1.0, le=1.0)
    """Lower end of the loss interval, at most ``loss_high``."""
    loss_high: float = Field(ge=-1.0, le=1.0)
    """Upper end of the loss interval."""
    confidence: float = Field(gt=0.0, lt=1.0)
    """Two-sided level of [loss_low, loss_high]."""
    interval: Literal["newcombe", "bootstrap"]
    """'newcombe' (paired score interval, 0/1 scores) or 'bootstrap' (paired percentile)."""
    breaks: float = Field(ge=0.0, le=1.0)
    """Share of items where the frontier scored higher than the student."""
    fixes: float = Field(ge=0.0, le=1.0)
    """Share of items where the student scored higher than the frontier."""
    verdict: VerdictName
    """Verdict at the profile's tolerance; ``safe`` only when ``loss_high`` is within it."""
    counts: Counts | None = None
    """Paired 0/1 table, so the verdict can be recomputed exactly; its cells add up to ``n``."""
    student_cost: float | None = Field(default=None, ge=0.0)
    """Mean student cost per call ($)."""
    frontier_cost: float | None = Field(default=None, ge=0.0)
    """Mean frontier cost per call ($)."""
    student_latency: float | None = Field(default=None, ge=0.0)
    """Mean student latency per call (s), if known."""
    frontier_latency: float | None = Field(default=None, ge=0.0)
    """Mean frontier latency per call (s), if known."""
    student_tokens: float | None = Field(default=None, ge=0.0)
    """Mean student tokens per call, if known."""
    frontier_tokens: float | None = Field(default=None, ge=0.0)
    """Mean frontier tokens per call, if known."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> CategoryStats:
        problems = [] if _deferred(info) else self.problems()
        if problems:
            loc, message = problems[0]
            raise ValueError(f"{'.'.join(loc)}: {message}")
        return self

    def problems(self) -> list[Problem]:
        """Figures that contradict each other, as ``(key path, message)``."""
        found: list[Problem] = []
        low, high = self.loss_low, self.loss_high
        if low > high + _SLACK:
            found.append((("loss_low",), f"the loss interval is inverted: {low:g} > {high:g}"))
        elif self.interval == "newcombe" and not low - _SLACK <= self.loss <= high + _SLACK:
            message = f"loss {self.loss:g} lies outside its Newcombe interval [{low:g}, {high:g}]"
            found.append((("loss",), message))
        if self.counts is not None and self.counts.as_paired().n != self.n:
            found.append((("counts",), f"the counts add up to {self.counts.as_paired().n}, not n = {self.n}"))
        return found

    def interval_at(self, confidence: float) -> tuple[float, float]:
        """The loss interval at another two-sided ``confidence``.

        Exact (Newcombe again) when ``counts`` is present; for bootstrap
        categories the stored interval is rescaled as if normal around ``loss``
        (an approximation; the same level returns the stored interval).
        """
        if math.isclose(confidence, self.confidence):
            return self.loss_low, self.loss_high
        if self.counts is not None:
            return newcombe_paired_interval(self.counts.as_paired(), confidence)
        scale = z_two_sided(confidence) / z_two_sided(self.confidence)
        low = self.loss - (self.loss - self.loss_low) * scale
        return low, self.loss + (self.loss_high - self.loss) * scale

    def verdict_at(self, max_loss: float, confidence: float) -> VerdictName:
        """The verdict at another tolerance and confidence (see ``interval_at``)."""
        low, high = self.interval_at(confidence)
        return verdict(low, high, max_loss)


class StudentConfidence(_Figures):
    """The student's own confidence in one answer, from its token log-probabilities."""

    mean_logprob: float = Field(le=0.0)
    """Mean log-probability of the answer's tokens (0: certain of every token)."""
    min_logprob: float = Field(le=0.0)
    """Log-probability of the answer's least likely token."""
    tokens: int | None = Field(default=None, ge=1)
    """Tokens the log-probabilities cover, if known."""


class EvidenceItem(_Figures):
    """One measured item, kept so a per-prompt estimator can learn from it."""

    id: str
    """Item id, unique in the profile."""
    category: str
    """The item's task category."""
    prompt: str
    """The prompt text (user messages joined by blank lines)."""
    student: float = Field(ge=0.0, le=1.0)
    """Student score in [0, 1]."""
    frontier: float = Field(ge=0.0, le=1.0)
    """Frontier score in [0, 1]."""
    confidence: StudentConfidence | None = None
    """The student's confidence in its answer, when it was recorded (``bitrate profile build``
    asks the student for token log-probabilities); what a route's ``cascade`` is calibrated on."""


class Profile(_Figures):
    """A capability profile: student vs frontier, per task category."""

    schema_version: Literal[1] = 1
    """File format version; this bitrate reads 1."""
    created_at: datetime
    """When the profile was assembled (UTC, ISO 8601)."""
    method: Literal["build", "import"]
    """'build' (measured by bitrate) or 'import' (from recorded outcomes)."""
    student: ModelIdentity
    """The model that would substitute."""
    frontier: ModelIdentity
    """The model being substituted."""
    suite: SuiteInfo
    """The items measured."""
    tolerance: Tolerance
    """Tolerance and confidence the verdicts were computed at."""
    categories: dict[str, CategoryStats]
    """Per-category figures, keyed by category name."""
    evidence: list[EvidenceItem] | None = None
    """Per-item scores, or null when left out for sharing."""
    calls: dict[str, int] = Field(default_factory=dict)
    """Call accounting, e.g. {'student': 120, 'frontier': 0, 'cached': 120, 'saved': 40}."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Profile:
        problems = [] if _deferred(info) else self.problems()
        if problems:
            loc, message = problems[0]
            raise ValueError(f"{'.'.join(loc)}: {message}")
        return self

    def problems(self) -> list[Problem]:
        """Figures that contradict each other, as ``(key path, message)``: each category's own
        (see ``CategoryStats.problems``), and a ``safe`` verdict its interval does not give."""
        found: list[Problem] = []
        t = self.tolerance
        for name, stats in self.categories.items():
            found += [(("categories", name, *loc), message) for loc, message in stats.problems()]
            recomputed = stats.verdict_at(t.max_loss, t.confidence)
            if stats.verdict == "safe" and recomputed != "safe":
                message = (
                    f"verdict 'safe' does not follow from the loss interval at the profile's tolerance "
                    f"(max_loss {t.max_loss:g}, confidence {t.confidence:g}): it gives '{recomputed}'"
                )
                found.append((("categories", name, "verdict"), message))
        return found

    def verdicts(self, max_loss: float | None = None, confidence: float | None = None) -> dict[str, str]:
        """Verdict per category, at the profile's tolerance unless another is given."""
        t = self.tolerance.max_loss if max_loss is None else max_loss
        c = self.tolerance.confidence if confidence is None else confidence
        return {name: stats.verdict_at(t, c) for name, stats in self.categories.items()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON atomically: a temp file in the same folder, then rename."""
        target = Path(path)
        text = self.model_dump_json(indent=2) + "\n"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, text)
        except OSError as exc:
            raise ConfigError(f"cannot write profile: {exc.strerror or exc}", location=str(target)) from exc
        return target


def _deferred(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(_DEFER))


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile file.

    Raises ``ConfigError`` naming the file (and line or key) when the file is
    missing, not UTF-8, not JSON, of an unknown ``schema_version``, invalid, or
    holds figures that contradict each other (see the module docstring).
    """
    source = Path(path)
    text = read_text(source, "profile")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", location=f"{source}:{exc.lineno}") from exc
    if not isinstance(data, dict):
        raise ConfigError("a profile must be a JSON object", location=str(source))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"unsupported schema_version {version!r} (this bitrate reads {SCHEMA_VERSION})",
            location=str(source),
            key="schema_version",
        )
    try:
        profile = Profile.model_validate(data, context={_DEFER: True})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(first["msg"], location=str(source), key=key) from exc
    problems = profile.problems()
    if problems:
        loc, message = problems[0]
        raise ConfigError(message, location=str(source), key=".".join(loc))
    return profile
