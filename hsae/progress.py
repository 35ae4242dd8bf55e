"""Progress for long work: a tqdm bar on a terminal, periodic log lines anywhere else.

A bar redrawn with carriage returns is noise in a CI log or a ``nohup`` file, so when the
stream is not a terminal :func:`progress` prints a plain line at every tenth of the work
(and at least every ``log_seconds``) instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm


class LogProgress:
    """The part of tqdm's interface hsae uses, written as occasional plain lines."""

    def __init__(self, total: int | None, *, desc: str, unit: str, initial: int = 0, stream: TextIO | None = None,
                 log_seconds: float = 60.0) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.stream = stream or sys.stderr
        self.log_seconds = log_seconds
        self.postfix: dict[str, Any] = {}
        self._start = self._last_time = time.perf_counter()
        self._start_n = initial
        self._next_tenth = self._tenth_after(initial)
        self._printed_n = initial

    def _tenth_after(self, n: int) -> int:
        return (n * 10 // max(self.total, 1) + 1) if self.total else 10**9

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        tenth_reached = self.total and self.n * 10 >= self._next_tenth * self.total
        if tenth_reached or now - self._last_time >= self.log_seconds:
            self._next_tenth = self._tenth_after(self.n)
            self._last_time = now
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def _write(self, now: float) -> None:
        self._printed_n = self.n
        elapsed = now - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {done} {self.unit}s{percent}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s{extra}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.n != self._printed_n:  # the last line always says where the work stopped
            self._write(time.perf_counter())


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, *, desc: str, unit: str = "step", initial: int = 0, enabled: bool = True,
             stream: TextIO | None = None) -> Any:
    """A progress reporter for ``total`` units (``None``: unknown): tqdm on a terminal, :class:`LogProgress` otherwise."""
    stream = stream or sys.stderr
    if not enabled:
        return _NoProgress()
    if stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream)
    return LogProgress(total, desc=desc, unit=unit, initial=initial, stream=stream)
