"""sdk.backends.hf_batch: a sequence decoding in a batch gets the logits it gets alone.

The tolerance is part of the contract: rows of a wider matrix product round differently,
so a row's logits in a batch match its logits alone to within ``TOLERANCE[dtype]`` times
the largest logit (float32: 1e-5, measured ~1e-6; half precision: 2**-4, measured bfloat16
~2**-7). Greedy answers are therefore identical in float32 unless two top logits are closer
than that; in half precision near-ties may resolve differently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.backends.config import TransformersConfig
from tests.sdk.backends.random_llama import build_random_llama

torch = pytest.importorskip("torch")

from sdk.backends.hf_batch import Rows, prefill  # noqa: E402
from sdk.backends.hf_model import LoadedModel, load_model  # noqa: E402

TOLERANCE = {"float32": 1e-5, "bfloat16": 2**-4, "float16": 2**-4}
PROMPTS = ["hi", "What is 2+2? Tell me now.", "Tell me a story about a fox", "ok then"]
STEPS = 12


@pytest.fixture(scope="module")
def random_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_llama(tiny_model_dir, tmp_path_factory.mktemp("random-llama"))


def load(model: str | Path, dtype: str = "float32") -> LoadedModel:
    return load_model(TransformersConfig(backend="transformers", model=str(model), threads=1, dtype=dtype))


def prompt_ids(lm: LoadedModel, text: str) -> list[int]:
    from sdk.protocol import ChatRequest

    return lm.prompt_ids(ChatRequest(model="m", messages=[{"role": "user", "content": text}]))


def alone(lm: LoadedModel, ids: list[int], tokens: list[int]) -> list[torch.Tensor]:
    """The logits before each of ``tokens``, fed one by one to the sequence in a batch of its own."""
    rows = prefill(lm.forward, [ids], lm.pad_id, lm.device)
    logits = []
    for token in tokens:
        logits.append(rows.logits[0].clone())
        rows.step(lm.forward, [token], lm.pad_id)
    return logits


class Scenario:
    """Drives rows through joins, sit-outs, leaves and a park-and-rejoin, greedily, recording
    each sequence's logits at every token it picks."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.rows: Rows | None = None
        self.names: list[str] = []
        self.seen: dict[str, list[tuple[int, torch.Tensor]]] = {}
        """Per sequence: each token it picked (greedily, in the batch) and the logits it came from."""

    def join(
        self, names: list[str], prompts: list[list[int]] | None = None, rows: Rows | None = None
    ) -> None:
        block = rows or prefill(self.lm.forward, prompts or [], self.lm.pad_id, self.lm.device)
        self.rows = block if self.rows is None else Rows.join(self.rows, block)
        self.names += names
        for name in names:
            self.seen.setdefault(name, [])

    def step(self, sitting_out: tuple[str, ...] = ()) -> None:
        assert self.rows is not None
        greedy = self.rows.greedy()
        tokens: list[int | None] = []
        for i, name in enumerate(self.names):
            if name in sitting_out:
                tokens.append(None)
            else:
                self.seen[name].append((greedy[i], self.rows.logits[i].clone()))
                tokens.append(greedy[i])
        self.rows.step(self.lm.forward, tokens, self.lm.pad_id)

    def keep(self, names: list[str]) -> Rows:
        assert self.rows is not None
        self.rows = self.rows.select([self.names.index(n) for n in names])
        self.names = names
        return self.rows

    def take(self, name: str) -> Rows:
        assert self.rows is not None
        taken = self.rows.select([self.names.index(name)])
        self.keep([n for n in self.names if n != name])
        return taken


def run_scenario(lm: LoadedModel, ids: dict[str, list[int]]) -> dict[str, list[tuple[int, torch.Tensor]]]:
    s = Scenario(lm)
    s.join(["a", "b"], [ids["a"], ids["b"]])
    for _ in range(3):
        s.step()
    s.join(["c"], [ids["c"]])  # joins two tokens into a longer prompt's answer
    s.step(sitting_out=("b",))
    s.step(sitting_out=("b",))
    s.step()
    s.keep(["b", "c"])  # "a" leaves: its columns go
    d = s.take("c")  # "c" parked, compacted to its own tokens
    assert d.width == int(d.next_pos[0])
    s.join(["d"], [ids["d"]])
    s.step()
    s.step()
    s.join(["c"], rows=d)  # "c" comes back
    while min(len(s.seen[n]) for n in s.names) < STEPS:
        s.step(sitting_out=tuple(n for n in s.names if len(s.seen[n]) >= STEPS))
    return s.seen


def max_gap(
    lm: LoadedModel, ids: dict[str, list[int]], together: dict[str, list[tuple[int, torch.Tensor]]]
) -> float:
    """Largest logit difference between a sequence in the batch and alone (fed the same
    tokens), relative to the largest logit."""
    worst = 0.0
    for name, seen in together.items():
        tokens = [token for token, _ in seen]
        for (_, got), expected in zip(seen, alone(lm, ids[name], tokens), strict=True):
            worst = max(worst, float((got - expected).abs().max() / expected.abs().max()))
    return worst


def greedy_alone(lm: LoadedModel, ids: list[int], steps: int) -> list[int]:
    rows = prefill(lm.forward, [ids], lm.pad_id, lm.device)
    tokens = []
    for _ in range(steps):
        tokens.append(rows.greedy()[0])
        rows.step(lm.forward, tokens[-1:], lm.pad_id)
    return tokens


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rows_in_a_changing_batch_get_their_logits_alone(random_dir: Path, dtype: str):
    lm = load(random_dir, dtype)
    ids = {name: prompt_ids(lm, text) for name, text in zip("abcd", PROMPTS, strict=True)}
    with torch.inference_mode():
        together = run_scenario(lm, ids)
        assert max_gap(lm, ids, together) <= TOLERANCE[dtype]
        if dtype == "float32":
            for name, seen in together.items():
                assert [t for t, _ in seen] == greedy_alone(lm, ids[name], len(seen)), name


def test_gpt2_rows_in_a_batch_get_their_logits_alone():
    lm = load("embedded:student")
    ids = {
        name: prompt_ids(lm, text)
        for name, text in zip(
            "abcd", ["reverse: abc", "sort: d b a c", "copy: x y", "double: 3"], strict=True
        )
    }
    with torch.inference_mode():
        together = run_scenario(lm, ids)
        assert max_gap(lm, ids, together) <= TOLERANCE["float32"]


def test_rows_leaving_take_their_columns_with_them(random_dir: Path):
    lm = load(random_dir)
    short, long = prompt_ids(lm, "ok"), prompt_ids(lm, "a much longer prompt than the other one")
    with torch.inference_mode():
        rows = prefill(lm.forward, [long, short], lm.pad_id, lm.device)
        rows.step(lm.forward, [1, None], lm.pad_id)
        assert rows.width == len(long) + 1
        rows = rows.select([1])
        assert rows.width == len(short), "the long prompt's columns and the sat-out step are gone"
        assert rows.mask.all()
