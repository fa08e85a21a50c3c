"""What every `keel` command shares: the consoles and the way a command fails."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

# The options of every command that talks to the API.
ApiKeyOption = Annotated[
    str | None, typer.Option(envvar="KEEL_API_KEY", help="Default: the dev key `keel up` wrote.")
]
ApiUrlOption = Annotated[str | None, typer.Option(help="Default: http://localhost:<ports.api>.")]
TenantOption = Annotated[
    str | None, typer.Option(help="Refuse unless the API key belongs to this tenant.")
]

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (code 2: bad usage)."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
