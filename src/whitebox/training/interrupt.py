"""Stop requests: SIGTERM (SLURM's time limit, preemption, ``scancel``) and SIGINT (Ctrl-C)
become a flag that the training loop polls after each optimiser step, so it can write a
checkpoint at a clean point and exit instead of dying mid-step.

Ctrl-C while a stop is already requested raises KeyboardInterrupt at once (an escape hatch
when a step is slow); a repeated SIGTERM changes nothing (SLURM follows with SIGKILL after
KillWait anyway).
"""

from __future__ import annotations

import signal
import threading


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after writing what a rerun needs to continue.

    ``exit_status`` is the shell's convention for death by that signal (128 + number:
    143 for SIGTERM, 130 for SIGINT), so schedulers and Snakemake see the job as killed.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_status = 128 + signal_number


class StopRequest:
    """Context manager: while active, SIGTERM and SIGINT only set ``signal_number``.

    Outside the main thread (where handlers cannot be installed) it stays inactive and
    signals keep their usual effect.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else ""

    def _handle(self, signal_number: int, _frame) -> None:
        if self.requested and signal_number == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C while already stopping: stop now, no checkpoint
        if self.signal_number is None:
            self.signal_number = signal_number

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
