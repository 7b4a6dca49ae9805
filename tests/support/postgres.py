"""A throwaway PostgreSQL server for the tests, started from the installed binaries.

``initdb`` into a fresh folder under the system temp dir (trust auth, superuser ``bitrate``),
``pg_ctl start`` on a free port of 127.0.0.1 (no Unix socket, no fsync), one database, then
stopped by the postmaster's PID and removed. PostgreSQL refuses to run as root: when the tests
run as root, every server command runs as the ``postgres`` system user that Debian's package
creates (``subprocess``'s ``user=``), and the folder is handed to that user.

The binaries are looked up in Debian's layout, ``/usr/lib/postgresql/<version>/bin`` (newest
first), then on ``PATH``. ``make test`` installs them when missing (``apt-get install
postgresql``); :class:`PostgresMissing` says why a server cannot be had, so tests can skip.

::

    server = start_postgres()
    try:
        url = server.url            # postgresql://bitrate@127.0.0.1:PORT/bitrate_test
    finally:
        server.stop()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import HOST, free_port

__all__ = ["PostgresMissing", "PostgresServer", "find_bin_dir", "fresh_schema_url", "start_postgres"]

SUPERUSER = "bitrate"
SYSTEM_USER = "postgres"
INSTALL_HINT = "install it with `apt-get install postgresql` (`make test` does so when it can)"


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries, or a user allowed to run them, are not on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name  # /usr/lib/postgresql/<version>/bin/initdb
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: Debian's newest, else ``PATH``'s."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    for initdb in found:
        folder = Path(initdb).parent
        if (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


@dataclass
class PostgresServer:
    """A running server; :meth:`stop` ends it and removes its files."""

    bin_dir: Path
    root: Path
    port: int
    database: str
    pid: int

    @property
    def url(self) -> str:
        """The database's ``postgresql://`` URL (trust auth: no password)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{self.database}"

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT) by PID; SIGQUIT, then SIGKILL, if it lingers. Then remove the files."""
        pid_file = self.root / "data" / "postmaster.pid"
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout / 3
            while time.monotonic() < deadline and _alive(self.pid) and pid_file.exists():
                time.sleep(0.05)
            if not pid_file.exists() or not _alive(self.pid):
                break
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_as() -> dict[str, object]:
    """``subprocess`` keywords that run a server command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError as exc:
        raise PostgresMissing(
            f"running as root and there is no '{SYSTEM_USER}' user; {INSTALL_HINT}"
        ) from exc
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _run(args: list[str], **kwargs: object) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr or result.stdout}"
        )


def start_postgres(database: str = "bitrate_test", attempts: int = 3) -> PostgresServer:
    """Start a server and create ``database``; ``PostgresMissing`` when there are no binaries,
    ``RuntimeError`` (with the server's log) when they are there but the server would not start."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresMissing(
            f"PostgreSQL's server binaries (initdb, pg_ctl) are not installed; {INSTALL_HINT}"
        )
    as_user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="bitrate-pg-"))
    try:
        if as_user:
            shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        data = root / "data"
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
        _run([*initdb, "-E", "UTF8", "--no-locale", "--no-sync"], env=env, cwd=root, **as_user)
        pid, port = _start(bin_dir, root, env, as_user, attempts)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = PostgresServer(bin_dir, root, port, database, pid)
    try:
        _run(
            [str(bin_dir / "createdb"), "-h", HOST, "-p", str(server.port), "-U", SUPERUSER, database],
            env=env,
        )
    except BaseException:
        server.stop()
        raise
    return server


def _start(
    bin_dir: Path, root: Path, env: dict[str, str], as_user: dict[str, object], attempts: int
) -> tuple[int, int]:
    """``pg_ctl start`` on a free port (another if it was taken meanwhile); ``(pid, port)``."""
    log = root / "server.log"
    for attempt in range(attempts):
        port = free_port()
        options = (
            f"-p {port} -c listen_addresses={HOST} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        ctl = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-w", "-t", "60"]
        try:
            _run([*ctl, "-o", options, "start"], env=env, cwd=root, **as_user)
        except RuntimeError:
            if attempt == attempts - 1:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"PostgreSQL would not start; its log ends:\n{tail}") from None
            continue
        pid_line = (root / "data" / "postmaster.pid").read_text().splitlines()[0]
        return int(pid_line), port
    raise AssertionError("unreachable")


def fresh_schema_url(url: str, name: str) -> str:
    """``url`` with its own new, empty schema ``name`` as the search path (needs psycopg): tests
    sharing one server each get their own tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{url}?options=-csearch_path%3D{name}"
