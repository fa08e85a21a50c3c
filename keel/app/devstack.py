"""The embedded stack: Temporal dev server, PostgreSQL + pgvector and Redis, from PyPI packages.

One code path serves `keel up` and the test session fixture, so what the tests run is what a
user runs. Every service is a child process bound to loopback, with its data under one folder;
`stop()` shuts them down in reverse order, and each child is also told by the kernel to exit
if this process dies without cleaning up (PR_SET_PDEATHSIG), so Ctrl-C or a crash leaves
nothing behind.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from keel.app.processes import (
    PG_SYSTEM_USER,
    PortInUseError,
    Service,
    StackError,
    accepts_connections,
    binary,
    ensure_system_user,
    open_path_to,
    port_is_free,
    postgres_bin_dir,
    redis_ping,
    redis_server_bin,
)
from keel.settings import Settings

SEARCH_ATTRIBUTES: dict[str, str] = {
    "KeelTenant": "Keyword",
    "KeelFeature": "Keyword",
    "KeelStatus": "Keyword",
    "KeelCostUsd": "Double",
}


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
            binary("temporal"),
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
            ready=lambda: accepts_connections(self.host, ports.temporal) and self._temporal_ready(),
        )

    def _temporal_ready(self) -> bool:
        # The gRPC port opens before the namespace exists; ask the server itself.
        result = subprocess.run(
            [
                binary("temporal"),
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
            str(postgres_bin_dir() / "postgres"),
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
            ensure_system_user(user)
            open_path_to(user, self.data_dir)
            open_path_to(user, postgres_bin_dir().parent / "lib")
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
                    str(postgres_bin_dir() / "initdb"),
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
        if not accepts_connections(self.host, port):
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
            redis_server_bin(),
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
            ready=lambda: redis_ping(self.host, port),
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
