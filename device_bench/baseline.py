"""The bare-interpreter memory baseline: a process that imports what a target needs, and no more.

``python -m device_bench.baseline [--module M] --out FILE`` imports numpy, the worker module
(so the ``runtime`` package and everything the worker imports) and, if given, the interpreter
module ``M`` that a target's worker ended up using; it loads no artifact and records its peak
RSS. A target's memory cost is its worker's peak minus this figure. With ``--bare-interpreter``
it also creates one interpreter of ``M`` on a one-op model (``bare_models``), so that the
difference to a target is what that target's model costs beyond any interpreter instance.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import numpy as np  # noqa: F401 - imported for its memory, which the baseline must include
import numpy.random  # noqa: F401 - numpy 2 loads it lazily; the worker samples its inputs with it (2 MB)

import device_bench.worker  # noqa: F401 - the worker's code and imports (runtime), not its work
from device_bench.bare_models import run_bare_interpreter
from device_bench.measure import current_rss, peak_rss
from runtime.schema import manifest_schema


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device_bench.baseline")
    p.add_argument("--module", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--bare-interpreter", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    result: dict[str, object] = {"module": args.module, "error": None, "bare_interpreter": False}
    # every artifact load parses the runtime's manifest schema: what any target pays, not a
    # model's cost
    manifest_schema()
    code = 0
    try:
        if args.module:
            mod = importlib.import_module(args.module)
            if args.bare_interpreter:
                result["bare_interpreter"] = run_bare_interpreter(args.module, mod, args.threads)
    except Exception as e:  # noqa: BLE001 - an interpreter that will not import is a result
        result["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"
        code = 3
    peak, source = peak_rss()
    result.update({"peak_rss_bytes": peak, "rss_bytes": current_rss(), "source": source})
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
