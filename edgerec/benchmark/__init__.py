"""Workstation benchmarking: ``edgerec bench`` and what it compares against.

``device_bench`` (which imports only ``runtime``) measures artifacts on the machine that
serves; this package starts it and puts its figures beside the baselines. Modules by job:

- :mod:`.local`, :mod:`.ssh`: run device_bench here, or on a device over ssh;
- :mod:`.baselines`: PyG recomputing the graph (:mod:`.baselines.pyg`), FAISS indexes over the
  same vectors (:mod:`.baselines.faiss`), each in a fresh process;
- :mod:`.floor`: the physical floor (the item table read at memory bandwidth);
- :mod:`.merge`: one report of rows, with the ratios a user picks a target by;
- :mod:`.report`: report.json, report.md, report.png;
- :mod:`.run`: the whole ``edgerec bench`` run (:func:`bench`) and its device part
  (:func:`run_bench`).
"""

from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.measure import measure_callable
from edgerec.benchmark.merge import NUMPY_REFERENCE, baseline_row, gains, merge_reports
from edgerec.benchmark.report import render_markdown, write_report
from edgerec.benchmark.run import bench, check_bench_args, run_bench

__all__ = ["NUMPY_REFERENCE", "BenchError", "baseline_row", "bench", "check_bench_args",
           "gains", "measure_callable", "merge_reports", "render_markdown", "run_bench",
           "write_report"]
