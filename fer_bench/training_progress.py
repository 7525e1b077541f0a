"""Rich progress bar for a training run: step progress, the last epoch's loss and accuracies."""

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

    def step(self) -> None:
        # No running loss: reading it would make every step wait for the device.
        self._progress.update(self._task, advance=1)

    def epoch_done(self, epoch: int, row: dict) -> None:
        self.status = (
            f"ep {epoch + 1}/{self.epochs} loss {row['train']['loss']:.3f} "
            f"val {row['val']['acc']:.3f} test {row['test']['acc']:.3f}"
        )
        self._progress.update(self._task, status=self.status)
