"""Fixtures shared by the whole test tree: the tiny test model and a backend serving it, and a
PostgreSQL server for the session."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import tiny_model
from tests.support.postgres import PostgresMissing, start_postgres


def _build_once(cache_root: Path) -> Path:
    """Build the tiny model into a directory named by the builder's source hash, atomically,
    so parallel or repeated test runs reuse it and a change to the builder rebuilds it."""
    digest = hashlib.sha256(Path(tiny_model.__file__).read_bytes()).hexdigest()[:12]
    final = cache_root / f"tiny-model-{digest}"
    if (final / "config.json").is_file():
        return final
    staging = Path(tempfile.mkdtemp(prefix="tiny-model-", dir=cache_root))
    tiny_model.build_tiny_model(staging)
    try:
        os.replace(staging, final)
    except OSError:  # another run finished first: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """A saved tiny chat model (see tests/support/tiny_model.py), built once and cached."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return _build_once(Path(request.config.cache.mkdir("bitrate-models")))


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path):
    """A ``TransformersBackend`` named ``tiny`` on the tiny model, shared by the session
    (it is safe across event loops)."""
    from sdk.backends.config import TransformersConfig
    from sdk.backends.transformers_local import TransformersBackend

    backend = TransformersBackend(
        "tiny", TransformersConfig(backend="transformers", model=str(tiny_model_dir), threads=1)
    )
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database on a PostgreSQL server started for this session (``tests/support/postgres.py``),
    stopped at its end; skips only when PostgreSQL is not installed here."""
    try:
        server = start_postgres()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.stop()
