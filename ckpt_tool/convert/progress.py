"""Progress of one conversion, in its own units; the runner scales it to the source's size."""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[int, int], None]
"""``report(done, total)``: called as work advances; the last call has ``done == total``."""
Label = Callable[[str], None]
"""``label(text)``: what is being worked on now (the tensor being written or verified)."""


class Meter:
    def __init__(self, report: Report | None, total: int = 0, on_label: Label | None = None
                 ) -> None:
        self.report, self.total, self.done = report, total, 0
        self.on_label = on_label

    def grow(self, units: int) -> None:
        """More work than first announced (the total stays an estimate until the end)."""
        self.total += units

    def add(self, units: int) -> None:
        self.done += units
        if self.report is not None:
            self.report(min(self.done, self.total), max(self.total, 1))

    def label(self, text: str) -> None:
        if self.on_label is not None:
            self.on_label(text)

    def finish(self) -> None:
        self.done = self.total
        if self.report is not None:
            self.report(self.total, max(self.total, 1))
