"""Small pure pieces: API keys, error parameter paths, header safety."""

from __future__ import annotations

import pytest

from gateway.auth import ApiKeys
from gateway.errors import param_of, status_of
from gateway.state import ascii_header
from sdk.errors import AuthError, ConfigError, UpstreamStatusError


def test_keys_from_env():
    keys = ApiKeys.from_env("K", {"K": " a1 , b2 ,"})
    keys.check("Bearer a1")
    keys.check("bearer b2")
    for bad in (None, "", "Bearer", "Bearer a", "Basic a1", "Bearer a1b2"):
        with pytest.raises(AuthError):
            keys.check(bad)


def test_no_variable_named_means_open_and_a_named_empty_one_fails_at_load():
    ApiKeys.from_env(None).check(None)
    with pytest.raises(ConfigError, match="server.api_keys_env"):
        ApiKeys.from_env("K", {"K": " , "})


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("temperature",), "temperature"),
        (("messages", 1, "role"), "messages[1].role"),
        (("messages", 0, "content", "str"), "messages[0].content"),
        (
            ("response_format", "json_schema", "json_schema", "name"),
            "response_format.json_schema.json_schema.name",
        ),
        (("messages", 2, "function-after[_check_role_fields(), ChatMessage]"), "messages[2]"),
        ((), None),
    ],
)
def test_param_paths(loc: tuple, param: str | None):
    assert param_of(loc) == param


def test_upstream_caller_fault_keeps_its_status():
    assert status_of(UpstreamStatusError("bad", backend="f", upstream_status=422)) == 422
    assert status_of(UpstreamStatusError("busy", backend="f", upstream_status=429)) == 502
    assert status_of(UpstreamStatusError("down", backend="f", upstream_status=500)) == 502


def test_ascii_header():
    assert ascii_header("safe: loss 1.2% <= 5%") == "safe: loss 1.2% <= 5%"
    assert ascii_header("naïve\r\nx-evil: 1") == "na?ve??x-evil: 1"
