"""Graders: small objects scoring an answer to an item in [0, 1], from a registry.

``make_grader(name, args)`` builds one; :data:`GRADERS` lists them:

====================  ===========================================================
``exact``             stripped answer equals a reference
``normalised``        equal after lower-casing, dropping punctuation, collapsing space
``numeric``           last number in the answer equals the reference within tolerance
``regex``             a pattern (or the reference as one) matches
``mc``                the letter picked ("(B)", "B", "answer is B") is the reference
``json``              the answer is valid JSON
``json_schema``       the answer is JSON valid under a JSON Schema
``ifeval``            IFEval's instruction verifiers (needs ``bitrate[eval]``)
``agreement``         no reference: the student matches the frontier's answer
====================  ===========================================================

See ``docs/graders.md`` for details and the offline IFEval adaptation.
"""

from profiles.graders import ifeval, json_graders, numeric, text  # noqa: F401 - registers graders
from profiles.graders.base import GRADERS, Grader, make_grader, register
from profiles.graders.numeric import last_number
from profiles.graders.text import choice_letter, normalise

__all__ = ["GRADERS", "Grader", "choice_letter", "last_number", "make_grader", "normalise", "register"]
