"""What every `keel` command shares: the consoles and the way a command fails."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (code 2: bad usage)."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
