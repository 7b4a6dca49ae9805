"""Write an outcomes JSONL for ``bitrate profile import`` from recorded IFEval results.

    python examples/ifeval_outcomes.py --out ifeval_outcomes.jsonl
    bitrate profile import --outcomes ifeval_outcomes.jsonl --out ifeval_profile.json \\
        --student-name Qwen2.5-0.5B --frontier-name gpt-4o
    python examples/ifeval_outcomes.py --list      # the models and modes available

The data folder defaults to ``../shared/data/ifeval`` next to the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from profiles.ifeval_outcomes import ifeval_outcomes, list_models
from profiles.outcomes import write_outcomes

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ifeval"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ifeval data folder")
    parser.add_argument("--frontier", default="gpt-4o-2024-08-06")
    parser.add_argument("--student", default="Qwen__Qwen2.5-0.5B-Instruct-GPTQ-Int4")
    parser.add_argument("--mode", default="strict", choices=["strict", "loose"])
    parser.add_argument("--out", type=Path, help="where to write the outcomes JSONL")
    parser.add_argument("--list", action="store_true", help="list the models and modes, then exit")
    args = parser.parse_args()
    if args.list:
        for model, modes in list_models(args.data).items():
            print(f"{model}\t{','.join(modes)}")
        return
    if args.out is None:
        parser.error("--out is required (or use --list)")
    outcomes = ifeval_outcomes(args.data, frontier=args.frontier, student=args.student, mode=args.mode)
    write_outcomes(args.out, outcomes)
    print(f"wrote {len(outcomes)} outcomes to {args.out}")


if __name__ == "__main__":
    main()
