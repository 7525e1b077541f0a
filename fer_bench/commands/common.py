"""Helpers shared by sub-commands: one-line errors and the console."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    # The message is escaped: names such as "nla [detach_weight=true]" are not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected user errors into a one-line message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (
            ValueError,
            KeyError,
            FileNotFoundError,
            FileExistsError,
            PermissionError,
            NotADirectoryError,
            IsADirectoryError,
        ) as err:
            message = str(err) if not isinstance(err, KeyError) else str(err).strip("'\"")
            fail(message)

    return wrapper
