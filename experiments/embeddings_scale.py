"""Peak memory and time of compiling 768 MB of final embeddings (issue 15): ``from_embeddings``
on memory-mapped float32 tables of 2,000,000 items and 1,000,000 users x 64 dims, compiled to an
int8 IR and exported to TFLite.

Each step runs in a fresh Python process and reports its own peak resident set (``VmHWM``,
which counts the mapped file pages a process touches) and wall time; inside the compile step
the peak is reset (``/proc/self/clear_refs``) between its phases, so each phase's figure is
the process's peak during that phase (what was resident before it included). The target is a
peak of at most 1.5x the float tables' size in every step.

    python experiments/embeddings_scale.py [--users 1000000 --items 2000000 --dim 64]
        [--dir /tmp/edgerec_scale] [--json experiments/results/embeddings_scale.json]
        [--docs docs/benchmarks.md]

The tables are seeded, with a decaying spectrum in a random rotation (so that narrowing the
width costs agreement gradually and the guard has something to decide). No interactions are
given: lookup mode, nothing excluded, the guard holds top-20 agreement with the float tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
DOCS_HEADING = "## Final embeddings at scale (`from_embeddings`, issue 15)"


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS


class Phases:
    """Wall time and peak RSS of consecutive phases of this process."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | str]] = []
        self.start = time.perf_counter()
        _reset_peak()

    def end(self, name: str) -> None:
        now = time.perf_counter()
        self.rows.append({"step": name, "seconds": round(now - self.start, 1),
                          "peak_rss_mib": round(_peak_mib(), 1)})
        self.start = now
        _reset_peak()


def make_tables(root: Path, users: int, items: int, dim: int, seed: int) -> None:
    """``user.npy`` and ``item.npy`` written block by block: rows ``z * sigma @ Q`` with a
    spectrum ``sigma_j = exp(-j / 12)`` and a random orthogonal ``Q``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    sigma = np.exp(-np.arange(dim) / 12.0)
    mix = (sigma[:, None] * q).astype(np.float32)
    for name, rows in (("user", users), ("item", items)):
        out = np.lib.format.open_memmap(root / f"{name}.npy", mode="w+", dtype=np.float32,
                                        shape=(rows, dim))
        for start in range(0, rows, 1 << 18):
            stop = min(start + (1 << 18), rows)
            out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32) @ mix
            out.flush()
        del out


def step_compile(root: Path, dims: str) -> list[dict[str, float | str]]:
    """from_embeddings, then compile (every pass and the guard), then save the IR."""
    phases = Phases()
    import edgerec

    emb = edgerec.from_embeddings(root / "user.npy", root / "item.npy")
    phases.end("load + check (from_embeddings)")
    lines: list[str] = []
    compiled = edgerec.compile(emb, dims=None if dims == "full" else "auto" if dims == "auto"
                               else int(dims), quantize="int8", log=lines.append)
    phases.end(f"compile (dims {dims}, int8, guard)")
    compiled.save(root / "ir", overwrite=True)
    phases.end("save IR")
    out = phases.rows
    out.append({"step": "compile log", "lines": lines, "dim": compiled.ir.dim,
                "metrics": compiled.ir.metrics.get("compiled", {})})
    return out


def step_passes(root: Path, width: int) -> list[dict[str, float | str]]:
    """The compile step's passes one by one at a fixed width, each with its own peak."""
    phases = Phases()
    import numpy as np

    import edgerec
    from edgerec.lowering.embeddings import lower_embeddings
    from edgerec.passes.guard import GuardData, measure
    from edgerec.passes.prune import PruneDims
    from edgerec.passes.quantize import Quantize

    emb = edgerec.from_embeddings(root / "user.npy", root / "item.npy")
    ir, _ = lower_embeddings(emb, emb.modes)
    phases.end("lower (tables stay mapped)")
    gdata = GuardData.from_truth((np.zeros(ir.num_users + 1, np.int64), np.zeros(0, np.int32)),
                                 ir.num_users)
    measure(ir, ir, gdata)
    phases.end("guard: float top-20 of 2000 users")
    pruned = PruneDims(width)(ir)[0] if width < ir.dim else ir
    phases.end(f"prune to {width} dims (svd)")
    quantized = Quantize("int8")(pruned)[0]
    del pruned
    phases.end("quantize int8")
    m = measure(quantized, ir, gdata)
    phases.end("guard: int8 top-20 + agreement")
    phases.rows.append({"step": "passes metrics", "metrics": m})
    return phases.rows


def step_export(root: Path) -> list[dict[str, float | str]]:
    phases = Phases()
    import edgerec

    edgerec.export(root / "ir", root / "tflite", target="tflite", overwrite=True)
    phases.end("export TFLite (load IR, convert, check)")
    size = sum(f.stat().st_size for f in (root / "tflite").iterdir())
    phases.rows.append({"step": "artifact", "bytes": size})
    return phases.rows


def _child(step: str, args: argparse.Namespace, *extra: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--step", step, "--dir", str(args.dir), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        return [{"step": step, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _markdown(result: dict) -> str:
    budget = result["budget_mib"]
    lines = [DOCS_HEADING, "",
             f"`python experiments/embeddings_scale.py` ({result['date']}): "
             f"{result['items']:,} items and {result['users']:,} users x {result['dim']} dims, "
             f"float32 memory-mapped `.npy` files ({result['tables_mib']:.0f} MiB), no "
             "interactions (lookup mode; the guard holds top-20 agreement >= 0.9 with the float "
             f"tables). Target: peak RSS <= 1.5x the tables = {budget:.0f} MiB. Each row is one "
             "fresh process's phase; its peak includes what was resident before it (Python, "
             "numpy, torch; TensorFlow for the export).", "",
             "| step | wall s | peak RSS MiB | within 1.5x |", "|---|---:|---:|---|"]
    for r in result["steps"]:
        if "peak_rss_mib" in r:
            ok = "yes" if r["peak_rss_mib"] <= budget else "**no**"
            lines.append(f"| {r['step']} | {r['seconds']} | {r['peak_rss_mib']:.0f} | {ok} |")
        elif "error" in r:
            lines.append(f"| {r['step']} | - | - | failed: {r['error']} |")
    for note in result.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _write_docs(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if DOCS_HEADING in old:  # replace this script's own section, keep the rest
        head, _, tail = old.partition(DOCS_HEADING)
        rest = tail.split("\n## ", 1)
        old = head + ("## " + rest[1] if len(rest) > 1 else "")
    path.write_text(old.rstrip("\n") + "\n\n" + text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--dims", default="auto", help="compile width: auto, full or a number")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", type=Path, default=Path("/tmp/edgerec_scale"))
    p.add_argument("--json", type=Path, default=ROOT / "experiments/results/embeddings_scale.json")
    p.add_argument("--docs", type=Path, default=None, help="append the table to this markdown file")
    p.add_argument("--keep-tables", action="store_true",
                   help="reuse the tables already in --dir (made with the same sizes and seed)")
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--width", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step:  # a child process: one step, its figures as the last stdout line
        if args.step == "make":
            phases = Phases()
            make_tables(args.dir, args.users, args.items, args.dim, args.seed)
            phases.end("make tables (block by block)")
            rows = phases.rows
        else:
            rows = {"compile": lambda: step_compile(args.dir, args.dims),
                    "passes": lambda: step_passes(args.dir, args.width),
                    "export": lambda: step_export(args.dir)}[args.step]()
        print(json.dumps(rows))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    tables = (args.users + args.items) * args.dim * 4 / MiB
    sizes = {"user.npy": args.users, "item.npy": args.items}
    if args.keep_tables and all((args.dir / f).is_file() and (args.dir / f).stat().st_size >=
                                n * args.dim * 4 for f, n in sizes.items()):
        steps = []  # the same seeded tables, already on disk
    else:
        steps = _child("make", args, "--users", str(args.users), "--items", str(args.items),
                       "--dim", str(args.dim), "--seed", str(args.seed))
    compiled = _child("compile", args, "--dims", args.dims)
    steps += compiled
    width = next((int(r["dim"]) for r in compiled if r.get("step") == "compile log"), args.dim)
    steps += _child("passes", args, "--width", str(width))
    steps += _child("export", args)
    result = {"date": time.strftime("%Y-%m-%d"), "users": args.users, "items": args.items,
              "dim": args.dim, "tables_mib": tables, "budget_mib": 1.5 * tables,
              "steps": steps, "notes": []}
    over = [r["step"] for r in steps if r.get("peak_rss_mib", 0) > 1.5 * tables]
    result["within_budget"] = not over and not any("error" in r for r in steps)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(_markdown(result))
    if args.docs:
        _write_docs(args.docs, _markdown(result))


if __name__ == "__main__":
    main()
