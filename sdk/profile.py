"""The capability profile file: schema, loading and atomic saving.

A profile says, per task category, how much quality is lost when the student
answers instead of the frontier, with a confidence interval, and whether the
student is ``safe``, ``uncertain`` or ``unsafe`` there (see ``sdk.stats`` for
the conventions). It is JSON, versioned by ``schema_version``; ``load_profile``
rejects versions it does not know. Built by ``profiles.assemble``; read by the
router.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from sdk.config_model import StrictModel
from sdk.errors import ConfigError
from sdk.stats import PairedCounts, VerdictName, newcombe_paired_interval, verdict, z_two_sided

__all__ = [
    "SCHEMA_VERSION",
    "CategoryStats",
    "Counts",
    "EvidenceItem",
    "ModelIdentity",
    "Profile",
    "SuiteInfo",
    "Tolerance",
    "load_profile",
]

SCHEMA_VERSION = 1


class ModelIdentity(StrictModel):
    """Which model played a side when the profile was measured."""

    name: str
    """The policy's name for the model (e.g. 'student')."""
    model: str | None = None
    """The model id or path the backend served."""
    backend: str | None = None
    """Backend kind ('openai', 'transformers', 'vllm'), or 'import'."""


class SuiteInfo(StrictModel):
    """The probe items the profile was measured on."""

    names: list[str]
    """Suite names (or the outcomes file name for an import)."""
    sha256: str
    """SHA-256 of the suite content, so two profiles can be compared."""
    n_items: int = Field(ge=0)
    """Number of items measured."""


class Tolerance(StrictModel):
    """How much loss is acceptable and how sure we must be."""

    max_loss: float = Field(ge=0.0, le=1.0)
    """Largest acceptable mean loss (f - s), e.g. 0.02."""
    confidence: float = Field(gt=0.0, lt=1.0)
    """Two-sided level of the loss interval (0.90: each verdict holds one-sided at 95%)."""


class Counts(StrictModel):
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


class CategoryStats(StrictModel):
    """What the profile knows about one task category."""

    n: int = Field(ge=1)
    """Number of items measured in the category."""
    student_accuracy: float
    """Mean student score."""
    frontier_accuracy: float
    """Mean frontier score."""
    retention: float | None = None
    """student_accuracy / frontier_accuracy; null when the frontier scored 0."""
    loss: float
    """Mean of f - s: quality lost when the student answers."""
    loss_low: float
    """Lower end of the loss interval."""
    loss_high: float
    """Upper end of the loss interval."""
    confidence: float = Field(gt=0.0, lt=1.0)
    """Two-sided level of [loss_low, loss_high]."""
    interval: Literal["newcombe", "bootstrap"]
    """'newcombe' (paired score interval, 0/1 scores) or 'bootstrap' (paired percentile)."""
    breaks: float
    """Share of items where the frontier scored higher than the student."""
    fixes: float
    """Share of items where the student scored higher than the frontier."""
    verdict: VerdictName
    """Verdict at the profile's tolerance."""
    counts: Counts | None = None
    """Paired 0/1 table, so the verdict can be recomputed exactly."""
    student_cost: float | None = None
    """Mean student cost per call ($)."""
    frontier_cost: float | None = None
    """Mean frontier cost per call ($)."""
    student_latency: float | None = None
    """Mean student latency per call (s), if known."""
    frontier_latency: float | None = None
    """Mean frontier latency per call (s), if known."""
    student_tokens: float | None = None
    """Mean student tokens per call, if known."""
    frontier_tokens: float | None = None
    """Mean frontier tokens per call, if known."""

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


class EvidenceItem(StrictModel):
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


class Profile(StrictModel):
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
    missing, not JSON, of an unknown ``schema_version``, or invalid.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read profile: {exc.strerror or exc}", location=str(source)) from exc
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
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(first["msg"], location=str(source), key=key) from exc
