"""Policy loading: typed, strict, and one clear error with file, line and key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from sdk import embedded
from sdk.errors import ConfigError
from sdk.policy import Policy, default_policy, load_policy

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
version: 1
models:
  big:
    backend: openai
    base_url: http://127.0.0.1:9/v1
    model: big-model
    price: {input: 2.5, output: 10}
  small:
    backend: transformers
    model: ./student
routes:
  auto:
    student: small
    frontier: big
    profile: prof.json
    tolerance: {max_loss: 0.03, confidence: 0.9}
    tasks:
      detect: [hint, rules]
      rules:
        - {match: "^reverse:", task: reverse}
    pin: {code: frontier}
    escalate:
      - {check: json_valid}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_policy_loads_typed(tmp_path):
    policy = load_policy(write(tmp_path, GOOD))
    route = policy.routes["auto"]
    assert policy.models["big"].backend == "openai"
    assert route.tolerance.max_loss == 0.03
    assert route.uncertain == "frontier" and route.unknown == "frontier"
    assert route.fallback.student_error == "frontier" and route.fallback.frontier_error == "none"
    assert route.tasks.rules[0].pattern.search("reverse: abc")
    assert route.escalate[0].check == "json_valid"
    assert policy.profile_path("auto") == tmp_path.resolve() / "prof.json"
    assert policy.server.max_body_bytes == 1 << 20 and policy.server.log_bodies is False


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


BROKEN = [
    # (description, replace old, with new, line marker, key, message part)
    (
        "unknown key",
        "    pin: {code: frontier}",
        "    pinn: {code: frontier}",
        "pinn:",
        "routes.auto.pinn",
        "unknown key",
    ),
    ("bad regex", '"^reverse:"', '"^(reverse:"', "^(reverse", "routes.auto.tasks.rules.0.match", "regular"),
    (
        "missing model",
        "    student: small",
        "    student: smal",
        "student: smal",
        "routes.auto.student",
        "smal",
    ),
    (
        "unknown key in a model",
        "    model: big-model",
        "    modle: big-model",
        "modle:",
        "models.big.modle",
        "unknown",
    ),
    ("bad value", "max_loss: 0.03", "max_loss: 3", "max_loss", "routes.auto.tolerance.max_loss", "less than"),
    (
        "bad check",
        "{check: json_valid}",
        "{check: json_vaild}",
        "json_vaild",
        "routes.auto.escalate.0",
        "json_valid",
    ),
    ("bad version", "version: 1", "version: 2", "version", "version", "1"),
    ("bad side", "{code: frontier}", "{code: frontend}", "code: frontend", "routes.auto.pin.code", "student"),
]


@pytest.mark.parametrize(
    ("what", "old", "new", "marker", "key", "message"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_broken_policy_gives_one_error_with_file_line_and_key(tmp_path, what, old, new, marker, key, message):
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    err = info.value
    assert err.location == f"{path}:{_line_of(text, marker)}", str(err)
    assert err.key == key
    assert message in str(err)
    assert "\n" not in str(err)


def test_missing_required_key_points_at_its_mapping(tmp_path):
    text = GOOD.replace("    model: ./student\n", "")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.key == "models.small.model"
    assert info.value.location == f"{path}:{_line_of(text, '  small:')}"
    assert "missing" in str(info.value)


def test_route_and_model_names_share_one_namespace(tmp_path):
    text = GOOD.replace("routes:\n  auto:", "routes:\n  big:")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="both a route and a model") as info:
        load_policy(path)
    assert info.value.key == "routes.big"
    route_line = [i for i, line in enumerate(text.splitlines(), 1) if line == "  big:"][-1]
    assert info.value.location == f"{path}:{route_line}"


def test_duplicate_key_is_an_error_not_silently_the_last(tmp_path):
    text = GOOD.replace(
        "    pin: {code: frontier}\n",
        "    pin: {code: frontier}\n    uncertain: student\n    uncertain: frontier\n",
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="defined twice") as info:
        load_policy(path)
    assert info.value.key == "routes.auto.uncertain"
    assert info.value.location == f"{path}:{_line_of(text, 'uncertain: frontier')}"


def test_bad_yaml_names_the_line(tmp_path):
    text = GOOD.replace("    tolerance: {max_loss: 0.03, confidence: 0.9}", "    tolerance: {max_loss: 0.03")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_policy(path)
    assert info.value.location.startswith(f"{path}:")


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n"])
def test_non_mapping_file_is_one_error(tmp_path, text):
    with pytest.raises(ConfigError, match="mapping"):
        load_policy(write(tmp_path, text))


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_programmatic_policy_checks_references_too():
    data = yaml.safe_load(GOOD)
    data["routes"]["auto"]["frontier"] = "huge"
    with pytest.raises(ValueError, match="no model named 'huge'"):
        Policy.model_validate(data)


def test_embedded_profile_reference_resolves(tmp_path):
    policy = load_policy(write(tmp_path, GOOD.replace("profile: prof.json", 'profile: "embedded:profile"')))
    assert policy.profile_path("auto") == embedded.profile_path()


def test_default_policy_is_the_embedded_pair():
    policy = default_policy()
    assert set(policy.models) == {"frontier", "student"}
    assert policy.models["frontier"].model == "embedded:teacher"
    assert policy.models["student"].model == "embedded:student"
    assert policy.models["frontier"].price.output > 10 * policy.models["student"].price.output
    route = policy.routes["auto"]
    assert route.tasks.detect == ["hint", "rules", "embeddings", "lexical"]
    assert (route.tolerance.max_loss, route.tolerance.confidence) == (0.10, 0.90)
    assert policy.profile_path("auto") == embedded.profile_path()


def test_example_policy_loads():
    policy = load_policy(REPO / "examples" / "policy.yaml")
    assert policy.routes["auto"].pin == {"code": "frontier"}
    assert policy.server.api_keys_env == "BITRATE_API_KEYS"


def test_schema_validates_the_shipped_policies():
    schema = json.loads(json.dumps(Policy.model_json_schema()))
    for path in (REPO / "examples" / "policy.yaml", embedded.EMBEDDED_DIR / "default_policy.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    assert "max_loss" in json.dumps(schema)
