"""The contract every compiler pass keeps: ``IR -> IR``, its options bound when it is built.

A pass is an object (``Quantize("int8")``, ``PruneDims(32)``) whose call takes an IR and returns
the new IR with the pass's report appended to the IR's pass log, and the report itself. It
raises its errors in its own words (an :class:`edgerec.errors.EdgerecError` or a
``ValueError``); :class:`edgerec.passes.manager.PassManager` names the failing pass, checks the
IR after each pass and measures what each cost.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from edgerec.ir import IR, PassReport


class Pass(abc.ABC):
    """One compiler pass.

    Attributes:
        name (str): the name in the pass log and the reports.
        measured (bool): whether the manager measures the guard's metrics before and after it
            (a pass that measures itself, or that changes the items so that the float
            reference no longer applies, says ``False``).
    """

    name: ClassVar[str]
    measured: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        """Run the pass on ``ir``: the new IR (its pass log ends with the report) and the report."""


def logged(ir: IR, new: IR, name: str, params: dict[str, Any],
           notes: Sequence[str] = ()) -> tuple[IR, PassReport]:
    """``new`` (made from ``ir`` by the pass ``name``) with that pass's report appended to its
    pass log, and the report: what every pass returns."""
    report = PassReport(name=name, params=params, bytes_before=ir.nbytes, bytes_after=new.nbytes,
                        notes=list(notes))
    return new.with_pass(report), report
