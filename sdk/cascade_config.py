"""The policy's ``cascade:`` option of a route: the student answers first, its confidence decides.

Typed here (pydantic only) so ``sdk.policy`` stays light; the cascade itself is ``sdk.cascade``.
"""

from __future__ import annotations

from typing import Literal

from sdk.config_model import StrictModel

__all__ = ["CascadeConfig", "CascadeSignal"]

CascadeSignal = Literal["mean_logprob", "min_logprob", "combined"]
"""How the student's token log-probabilities become one confidence score."""


class CascadeConfig(StrictModel):
    """Let the student answer first where the route would ask the frontier, and keep its answer when
    its own confidence clears a threshold calibrated on the profile's evidence (which must record
    the student's confidence per item: ``bitrate profile build`` does). The price: every request
    the student does not keep costs a student call and its latency on top of the frontier's."""

    signal: CascadeSignal = "mean_logprob"
    """``mean_logprob`` (mean of the answer's token log-probabilities), ``min_logprob`` (its least
    likely token), or ``combined`` (a linear model of both and the task's loss, fitted on the
    evidence with the same cross-fitting as the threshold)."""
