"""Rich progress bar for a training run: step progress, running loss, last accuracies."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    def __init__(self, name: str, epochs: int, steps: int, enabled: bool = True) -> None:
        self.epochs, self.steps = epochs, steps
        self.enabled = enabled
        self.status = ""
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(name, total=epochs * steps, status="")

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def advance_to(self, epoch: int) -> None:
        self._progress.update(self._task, completed=epoch * self.steps)

    def step(self, loss: float) -> None:
        self._progress.update(self._task, advance=1, status=f"loss {loss:.3f} {self.status}")

    def epoch_done(self, epoch: int, row: dict) -> None:
        self.status = (
            f"ep {epoch + 1}/{self.epochs} val {row['val']['acc']:.3f} "
            f"test {row['test']['acc']:.3f}"
        )
        self._progress.update(self._task, status=self.status)
