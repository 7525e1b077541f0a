"""Progress of a training run: on a terminal a rich bar (step progress, the last epoch's
loss and accuracies), elsewhere (output to a file, a pipe) one line per epoch; and where
an interrupted run stopped, with the command that resumes it."""

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
    def __init__(
        self,
        name: str,
        epochs: int,
        steps: int,
        enabled: bool = True,
        resume: str = "",
        console: Console | None = None,
    ) -> None:
        """``resume``: the command that resumes the run, said when it is interrupted."""
        self.name, self.epochs, self.steps = name, epochs, steps
        self.enabled, self.resume = enabled, resume
        self.status = ""
        self.console = console or Console(stderr=True)
        # A bar only on a terminal: elsewhere rich draws nothing until the end.
        self.lines = enabled and not self.console.is_terminal
        self.epoch = self.step_in_epoch = 0  # where training is: 0-based epoch, steps done
        self.saved = 0  # epochs done and checkpointed
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled or self.lines,
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
        if exc_type is KeyboardInterrupt and self.enabled:
            self.console.print(self.interrupted(), highlight=False, markup=False)

    def interrupted(self) -> str:
        """Where the run stopped, what is kept and how to go on."""
        where = (
            f"interrupted in epoch {self.epoch + 1}/{self.epochs} at step "
            f"{self.step_in_epoch}/{self.steps}"
        )
        kept = (
            f"the checkpoint of epoch {self.saved} is kept"
            if self.saved
            else "no epoch was finished, so it starts from the beginning"
        )
        resume = f"; resume with: {self.resume}" if self.resume else ""
        return f"{self.name}: {where}; {kept}{resume}"

    def advance_to(self, epoch: int) -> None:
        self.epoch = self.saved = epoch
        self._progress.update(self._task, completed=epoch * self.steps)

    def step(self) -> None:
        # No running loss: reading it would make every step wait for the device.
        self.step_in_epoch += 1
        self._progress.update(self._task, advance=1)

    def epoch_done(self, epoch: int, row: dict) -> None:
        self.status = (
            f"ep {epoch + 1}/{self.epochs} loss {row['train']['loss']:.3f} "
            f"val {row['val']['acc']:.3f} test {row['test']['acc']:.3f}"
        )
        self.epoch, self.saved, self.step_in_epoch = epoch + 1, epoch + 1, 0
        self._progress.update(self._task, status=self.status)
        if self.lines:
            time = f", {row['time_s']:.0f} s" if "time_s" in row else ""
            self.console.print(f"{self.name} {self.status}{time}", highlight=False)
