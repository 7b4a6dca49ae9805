"""Calibrating a route's cascade on its profile's evidence (see ``sdk.cascade``): numpy, loaded
only for a route that cascades."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from sdk.calibration import crossfit_calibrate
from sdk.cascade_config import CascadeConfig
from sdk.decide import CategoryVerdict
from sdk.decision import TaskGuess
from sdk.policy import RouteConfig
from sdk.profile import EvidenceItem

__all__ = ["GateFit", "base_sides", "fit_gate"]


class GateFit(NamedTuple):
    """What calibration found (``sdk.cascade.CascadeGate`` holds it)."""

    threshold: float
    overall_loss: float
    coef: tuple[float, ...]
    kept_share: float
    loss_high: float


_ALWAYS, _CASCADED, _LEFT_OUT = "always", "cascaded", "left_out"


def base_sides(
    route: RouteConfig,
    guesses: Sequence[TaskGuess],
    verdicts_for: Callable[[TaskGuess], Mapping[str, CategoryVerdict]],
) -> list[tuple[str, float | None]]:
    """Per evidence item, what category routing does with it (``decide()``'s rules pin, unknown,
    verdict and uncertain, in that order) and the loss of its task: ``always`` (the student
    answers anyway), ``cascaded`` (the frontier would: the student may answer first) or
    ``left_out`` (pinned to the frontier)."""
    out: list[tuple[str, float | None]] = []
    for guess in guesses:
        verdict = verdicts_for(guess).get(guess.task)
        loss = verdict.loss if verdict is not None else None
        pin = route.pin.get(guess.task)
        if pin is not None:
            side = pin
        elif guess.task == "unknown":
            side = route.unknown
        elif verdict is not None and verdict.verdict in ("safe", "unsafe"):
            side = "student" if verdict.verdict == "safe" else "frontier"
        else:
            side = route.uncertain
        kind = _ALWAYS if side == "student" else (_LEFT_OUT if pin == "frontier" else _CASCADED)
        out.append((kind, loss))
    return out


def fit_gate(
    config: CascadeConfig,
    route: RouteConfig,
    evidence: Sequence[EvidenceItem],
    guesses: Sequence[TaskGuess],
    verdicts_for: Callable[[TaskGuess], Mapping[str, CategoryVerdict]],
) -> GateFit:
    """The cascade's threshold on ``evidence`` (see ``sdk.cascade``): items routing sends to the
    student anyway score ``-inf``; cascaded items with a recorded confidence are scored; the rest
    (pinned to the frontier, or cascaded without a confidence) are left out."""
    sides = base_sides(route, guesses, verdicts_for)
    student = np.array([i.student for i in evidence], dtype=np.float64)
    frontier = np.array([i.frontier for i in evidence], dtype=np.float64)
    overall = float((frontier - student).mean())
    recorded = [item.confidence is not None for item in evidence]
    cascaded = np.array([k == _CASCADED and r for (k, _), r in zip(sides, recorded, strict=True)])
    keep = cascaded | np.array([k == _ALWAYS for k, _ in sides])
    x = np.zeros((len(evidence), 4))
    for j, (item, (_kind, loss)) in enumerate(zip(evidence, sides, strict=True)):
        if item.confidence is not None:
            c = item.confidence
            x[j] = (1.0, c.mean_logprob, c.min_logprob, overall if loss is None else loss)
    diffs = frontier - student

    def fit(rows: np.ndarray) -> np.ndarray:
        if not rows.any():
            return np.zeros(4)
        return np.linalg.lstsq(x[rows], diffs[rows], rcond=None)[0]

    def scores(coef: np.ndarray) -> np.ndarray:
        if config.signal == "mean_logprob":
            raw = -x[:, 1]
        elif config.signal == "min_logprob":
            raw = -x[:, 2]
        else:
            raw = x @ coef
        return np.where(cascaded, raw, -np.inf)[keep]

    coef = fit(cascaded) if config.signal == "combined" else np.zeros(4)
    groups = np.unique([i.prompt for i in evidence], return_inverse=True)[1][keep]
    full = np.flatnonzero(keep)

    def refit(rest: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(evidence), dtype=bool)
        mask[full[rest]] = True
        return scores(fit(mask & cascaded))

    tol = route.tolerance
    calibration = crossfit_calibrate(
        scores(coef),
        student[keep],
        frontier[keep],
        groups,
        max_loss=tol.max_loss,
        confidence=tol.confidence,
        refit=refit if config.signal == "combined" else None,
    )
    kept = scores(coef)[cascaded[keep]] <= calibration.threshold
    return GateFit(
        threshold=calibration.threshold,
        overall_loss=overall,
        coef=tuple(float(c) for c in coef) if config.signal == "combined" else (),
        kept_share=float(kept.mean()) if kept.size else 0.0,
        loss_high=calibration.loss_high,
    )
