"""The pass manager: run a list of passes, check the IR after each, measure, keep one report.

After every pass the IR is validated (a device must never see an inconsistent table); a pass
that fails, or leaves an invalid IR, is named in the error. With ``measure`` the manager also
records the guard's metrics before and after each measured pass, in the report and in the
IR's pass log (the same record ``edgerec compile`` prints as its pass table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edgerec.errors import EdgerecError
from edgerec.ir import IR, PassReport
from edgerec.passes.base import Pass

Metrics = dict[str, float]


class PassError(EdgerecError, ValueError):
    """A pass refused its input or produced an invalid IR; the message names the pass."""


@dataclass
class PassRun:
    """What a manager run produced: the final IR, one report per pass, the last metrics."""

    ir: IR
    reports: list[PassReport] = field(default_factory=list)
    metrics: Metrics = field(default_factory=dict)


class PassManager:
    """Runs ``passes`` in order.

    Args:
        passes (sequence of Pass): the passes, options already bound.
        measure (callable, optional): the guard's metrics of an IR (``IR -> dict``); when given,
            every measured pass's report carries the metrics before and after it.
            (default: :obj:`None`)
    """

    def __init__(self, passes: Sequence[Pass], measure: Callable[[IR], Metrics] | None = None) -> None:
        self.passes = list(passes)
        self.measure = measure

    def run(self, ir: IR, metrics: Metrics | None = None) -> PassRun:
        """Run every pass on ``ir``; ``metrics`` are ``ir``'s own, if already measured."""
        run = PassRun(ir, metrics=dict(metrics or {}))
        for p in self.passes:
            try:
                new, report = p(run.ir)
                new.validate()
            except EdgerecError as e:
                raise _renamed(e, p) from None
            except ValueError as e:
                raise _named(PassError(f"{p.name} pass: {e}"), p) from None
            if self.measure is not None and p.measured:
                after = self.measure(new)
                report = dataclasses.replace(report, metrics_before=run.metrics, metrics_after=after)
                new = new.replace(passes=(*new.passes[:-1], report.to_json()))
                run.metrics = after
            run.ir = new
            run.reports.append(report)
        return run


def _renamed(error: EdgerecError, p: Pass) -> EdgerecError:
    """The same error class, its message prefixed with the pass that raised it (once)."""
    text = str(error)
    prefix = f"{p.name} pass: "
    return _named(type(error)(text if text.startswith(prefix) else prefix + text), p)


def _named(error: EdgerecError, p: Pass) -> EdgerecError:
    error.pass_name = p.name  # type: ignore[attr-defined]  # the CLI names the option behind it
    return error
