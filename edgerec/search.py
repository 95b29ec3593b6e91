r"""The compression search: which number format, width and distillation give the smallest file
the guard accepts (``quantize="auto"`` with ``dims="auto"``, the defaults).

A candidate is a point :math:`(f, w, d)`: number format :math:`f` (``int8``, ``int4-item``,
``int4``), width :math:`w` and whether the pruned tables are distilled. The search returns

.. math::
    \arg\min_{(f, w, d)\,:\ \text{guard}(f, w, d)} \text{bytes}(f, w, d)

where :math:`\text{bytes}` is the exported model file (the caller's ``size``: the TFLite file,
or the larger of the TFLite and ONNX files for ``target="all"``), and the guard holds the
candidate to the float model in every serving mode.

How it goes, cheapest first (every evaluation is a compile and a guard measurement):

1. without distillation, for every format, a binary search over the widths for the narrowest
   one the guard accepts (accuracy falls with the width, so a width below a refused one is not
   tried);
2. with distillation (where it is searched), for every format (smallest tables first), the
   widths narrower than that format's narrowest accepted one, from the widest down until the
   guard refuses two in a row, skipping widths whose tables are not smaller than the best
   accepted candidate's: distillation is the expensive step, so it is tried only where it can
   pay, and first where it is most likely to. One refusal does not stop it: a distilled width
   can keep more than a wider one (distillation recovers more where pruning lost more;
   LastFM, int4: 56 dims distilled refused, 32 and 24 accepted).

``budget`` (seconds) stops step 2, and step 1 once some candidate was accepted; the best
candidate found so far is kept. The file size of a (format, width) does not depend on the
values in its tables, so it is measured once per (format, width), on an accepted candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgerec.ir import IR

Metrics = dict[str, float]


@dataclass(frozen=True)
class Candidate:
    """One point of the search.

    Args:
        scheme (str): the quantize pass's scheme (``int8``, ``int4-item``, ``int4``...).
        width (int, optional): the width after pruning (:obj:`None`: the full width).
        distilled (bool): whether the pruned tables are distilled against the float model.
    """

    scheme: str
    width: int | None
    distilled: bool


@dataclass(frozen=True)
class Space:
    """What the search varies: each axis has one value when the user fixed it.

    Args:
        schemes (sequence of str): the formats tried, in the order of the table.
        widths (sequence of int or None): the widths, narrowest first.
        distill (sequence of bool): ``(False,)``, ``(True,)`` or ``(False, True)`` (searched).
    """

    schemes: tuple[str, ...]
    widths: tuple[int | None, ...]
    distill: tuple[bool, ...]


@dataclass
class Outcome:
    """What the search found: the chosen candidate (:obj:`None` if none passed) and one row per
    evaluated candidate, in the order tried."""

    chosen: Candidate | None
    rows: list[dict[str, Any]]


def public_format(scheme: str) -> str:
    return "float32" if scheme == "none" else scheme


class _Search:
    def __init__(self, evaluate: Callable[[Candidate], tuple[IR, Metrics, bool]],
                 size: Callable[[IR], int], budget: float, log: Callable[[str], None],
                 bar: Any) -> None:
        self.evaluate, self.size, self.budget, self.log, self.bar = evaluate, size, budget, log, bar
        self.start = time.perf_counter()
        self.rows: list[tuple[Candidate, dict[str, Any]]] = []
        self.accepted: dict[Candidate, int] = {}      # candidate -> file bytes
        self.table_bytes: dict[Candidate, int] = {}   # candidate -> IR table bytes
        self.sizes: dict[tuple[str, int | None], int] = {}

    def out_of_time(self, expected: float = 0.0) -> bool:
        """Whether the budget is spent, or would be by a step of ``expected`` seconds."""
        return time.perf_counter() - self.start + expected > self.budget

    def best(self) -> Candidate | None:
        if not self.accepted:
            return None
        # smallest file; on a tie (e.g. ONNX stores int4 as int8) the fewer table bytes, then the
        # candidate tried first (the cheaper one: undistilled, wider format)
        return min(self.accepted, key=lambda c: (self.accepted[c], self.table_bytes[c]))

    def run(self, c: Candidate) -> bool:
        t0 = time.perf_counter()
        ir, metrics, ok = self.evaluate(c)
        self.table_bytes[c] = ir.nbytes
        file_bytes = None
        if ok:
            key = (c.scheme, c.width)
            if key not in self.sizes:
                self.sizes[key] = self.size(ir)
            file_bytes = self.accepted[c] = self.sizes[key]
        row = {"format": public_format(c.scheme), "dims": ir.dim,
               "distilled": c.distilled and c.width is not None,
               "table_bytes": ir.nbytes, "file_bytes": file_bytes, "accepted": ok, **metrics,
               "seconds": round(time.perf_counter() - t0, 1)}
        self.rows.append((c, row))
        self.bar.update(1)
        self.log(f"search: {row['format']} {row['dims']} dims{' distilled' if c.distilled else ''}"
                 f" -> " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) +
                 (f", {file_bytes} file bytes (accepted)" if ok else " (over budget)") +
                 f" [{row['seconds']} s]")
        return ok

    def line(self, scheme: str, widths: Sequence[int | None], distilled: bool) -> int | None:
        """Binary search over ``widths`` (narrowest first) for the narrowest accepted one;
        its index, or :obj:`None`."""
        lo, hi, best = 0, len(widths) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.accepted and self.out_of_time():
                self.log("search: --search-budget reached; keeping the best candidate so far")
                return best
            if self.run(Candidate(scheme, widths[mid], distilled)):
                best, hi = mid, mid - 1
            else:
                lo = mid + 1
        return best

    def descend(self, scheme: str, widths: Sequence[int], table_bytes: Callable[[Candidate], int]) -> None:
        """Distilled, from the widest of ``widths`` down, until two refusals in a row: the first
        step below the undistilled narrowest is the one most likely to pay, and each costs a
        distillation. Widths whose tables are not smaller than the best so far are skipped."""
        refused = 0
        for w in sorted(widths, reverse=True):
            c = Candidate(scheme, w, True)
            best = self.best()
            if best is not None and table_bytes(c) >= self.table_bytes[best]:
                continue
            # a distillation takes about as long as the last one: do not start one that would end
            # past the budget
            last = [r["seconds"] for r in self.rows_distilled()]
            if self.out_of_time(last[-1] if last else 0.0):
                self.log("search: --search-budget reached; keeping the best candidate so far")
                return
            refused = 0 if self.run(c) else refused + 1
            if refused == 2:
                return

    def rows_distilled(self) -> list[dict[str, Any]]:
        return [row for c, row in self.rows if c.distilled]


def search(space: Space, evaluate: Callable[[Candidate], tuple[IR, Metrics, bool]],
           size: Callable[[IR], int], table_bytes: Callable[[Candidate], int], *,
           budget: float, log: Callable[[str], None] = lambda _m: None,
           progress: bool = False) -> Outcome:
    """Search ``space`` for the smallest accepted candidate (see the module's docstring).

    Args:
        space (Space): the formats, widths and distillation settings.
        evaluate (callable): ``Candidate -> (IR, metrics, accepted)``: compile and guard it.
        size (callable): the exported file's bytes for a compiled IR.
        table_bytes (callable): a candidate's table bytes, without compiling it (to skip
            distillation where it cannot pay).
        budget (float): seconds; the search keeps its best candidate when they run out.
        log (callable, optional): one line per candidate.
        progress (bool, optional): show a progress bar on stderr.
    """
    from tqdm import tqdm

    steps = max(1, len(space.widths).bit_length())
    with tqdm(total=steps * len(space.schemes) * len(space.distill), desc="search", unit="candidate",
              disable=not progress, leave=False) as bar:
        s = _Search(evaluate, size, budget, log, bar)
        first = space.distill[0]
        narrowest = {f: s.line(f, space.widths, first) for f in space.schemes}
        if len(space.distill) > 1:
            for f in sorted(space.schemes, key=lambda f: table_bytes(Candidate(f, space.widths[0], True))):
                stop = narrowest[f] if narrowest[f] is not None else len(space.widths)
                s.descend(f, [w for w in space.widths[:stop] if w is not None], table_bytes)
        chosen = s.best()
    for c, row in s.rows:
        row["chosen"] = c == chosen
    return Outcome(chosen, [row for _c, row in s.rows])


def record(rows: list[dict[str, Any]], reference: Metrics, ranked_by: str) -> dict[str, Any]:
    """The search as the IR's metrics keep it: no timings, so that the same compile gives the
    same artifact byte for byte."""
    return {"ranked_by": ranked_by, "float": dict(reference),
            "candidates": [{k: v for k, v in r.items() if k != "seconds"} for r in rows]}


def table_rows(rows: list[dict[str, Any]], reference: Metrics) -> list[dict[str, Any]]:
    """The search as a printed table: metrics as value (fraction of the float model's)."""
    out = []
    for r in rows:
        row = {"format": r["format"], "dims": r["dims"], "distilled": "yes" if r["distilled"] else "",
               "file bytes": r["file_bytes"] if r["file_bytes"] is not None else "",
               "guard": ("chosen" if r.get("chosen") else "pass") if r["accepted"] else "refused"}
        for key in sorted(k for k in r if "/" in k):
            ref = reference.get(key)
            row[key] = (f"{r[key]:.4f}" + (f" ({r[key] / ref:.1%})" if ref and "agreement" not in key else ""))
        if "seconds" in r:
            row["time"] = f"{r['seconds']:.1f} s"
        out.append(row)
    return out
