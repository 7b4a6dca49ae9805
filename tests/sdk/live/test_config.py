"""The policy's ``live:`` section (``LiveConfig``): defaults, where the store resolves, and the
mistakes it refuses (a password in the URL, a scheme no store speaks, a key it does not know)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sdk.live.config import DEFAULT_STORE, LiveConfig, is_postgres_url


def test_defaults_put_an_sqlite_file_beside_the_policy(tmp_path: Path):
    config = LiveConfig()
    assert config.store == DEFAULT_STORE and config.capture is False
    assert config.retention_days == 30 and config.max_rows == 100_000 and config.refresh_seconds == 5
    assert config.webhook is None
    assert config.store_location(tmp_path) == str(tmp_path / DEFAULT_STORE)
    assert LiveConfig(store="/var/lib/live.db").store_location(tmp_path) == "/var/lib/live.db"


def test_a_postgres_url_is_kept_as_written(tmp_path: Path):
    url = "postgresql://gateway@db.internal:5432/bitrate"
    assert LiveConfig(store=url).store_location(tmp_path) == url
    assert is_postgres_url(url) and is_postgres_url("postgres://h/db") and not is_postgres_url("live.sqlite")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"store": "postgresql://gateway:s3cret@db/bitrate"}, "PGPASSWORD"),
        ({"store": "mysql://db/bitrate"}, "not a mysql:// URL"),
        ({"webhook": "ftp://hooks.example.com/x"}, "http:// or https://"),
        ({"retention_days": 0}, "greater than 0"),
        ({"max_rows": 0}, "greater than or equal to 1"),
        ({"refresh_seconds": -1}, "greater than 0"),
        ({"retention": 30}, "Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_refused_without_echoing_the_input(fields: dict, message: str):
    with pytest.raises(ValidationError, match=message) as caught:
        LiveConfig.model_validate(fields)
    assert "s3cret" not in str(caught.value)


def test_every_field_is_documented_in_the_schema():
    properties = LiveConfig.model_json_schema()["properties"]
    assert set(properties) == {
        "store",
        "capture",
        "redact",
        "isolate",
        "retention_days",
        "max_rows",
        "refresh_seconds",
        "webhook",
    }
    assert all(p.get("description") for p in properties.values())


def test_limits_can_be_switched_off():
    config = LiveConfig(retention_days=None, max_rows=None, webhook="https://hooks.example.com/b")
    assert config.retention_days is None and config.max_rows is None
