"""Write a bench report: ``report.json``, a markdown table and a plot."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.merge import MODES
from edgerec.benchmark.promise import render_promises


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def _size(n: Any) -> str:
    if n is None:
        return "–"
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def _per_mode(row: Mapping[str, Any], fn: Callable[[Any], str], field: str) -> str:
    vals = row.get(field) or {}
    parts = [f"{m[0]}: {fn(vals[m])}" for m in MODES if m in vals]
    return "<br>".join(parts) if parts else "–"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as one markdown table, preceded by the machines it was measured on."""
    lines = ["# edgerec bench", ""]
    for r in report["runs"]:
        m, s = r["report"]["machine"], r["report"]["settings"]
        lines.append(f"- **{r['device']}** ({r['via']}): {m.get('cpu')}, {m.get('cores')} cores, "
                     f"{m.get('os')}, Python {m.get('python')}, numpy {m.get('numpy')}; "
                     f"{s['requests']} requests after {s['warmup']} warm-up, batch {s['batch']}, "
                     f"{s['threads']} thread(s)"
                     + ("; TFLite on the builtin kernels (--exact)" if s.get("exact") else ""))
    lines += ["", "Latency p50 / p95 / p99 in ms per mode (h: history, l: lookup); throughput in "
              "recommendations/s at the batch size; accuracy @20 per mode. Peak RSS +: over a "
              "process that imports the same modules (in brackets: over one that also runs a bare "
              "interpreter on a one-op model; the same figure where there is no interpreter).", "",
              "| device | target | quantization | modes | file size | init ms | peak RSS + | "
              "latency p50/p95/p99 ms | throughput /s | recall@20 | ndcg@20 | agreement@20 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        name = row["name"] + (" (baseline)" if row["kind"] == "baseline" else "")
        if row.get("error"):
            lines.append(f"| {row['device']} | {name} | error: {row['error']} |" + " |" * 9)
            continue
        lat = _per_mode(row, lambda v: f"{v['p50']:.3f} / {v['p95']:.3f} / {v['p99']:.3f}",
                        "latency_ms")
        tput = _per_mode(row, lambda v: _fmt(v, ".0f"), "throughput_recs_per_s")
        acc = {k: _per_mode({"a": {m: a.get(k) for m, a in row["accuracy"].items()}},
                            lambda v: _fmt(v, ".4f"), "a")
               for k in ("recall@20", "ndcg@20", "agreement@20")}
        lines.append(
            f"| {row['device'] or '–'} | {name}{f' ({t})' if (t := row.get('target')) and row['kind'] == 'baseline' else ''} | "
            f"{row.get('quantization') or '–'} | {', '.join(row.get('modes') or []) or '–'} | "
            f"{_size(row.get('file_bytes'))} | {_fmt(row.get('init_ms'), '.1f')} | "
            f"{_size(row.get('peak_rss_increase_bytes'))}{_bracket(row)} | {lat} | {tput} | "
            f"{acc['recall@20']} | {acc['ndcg@20']} | {acc['agreement@20']} |")
    reasons = {r["accuracy_reason"] for r in report["rows"] if r.get("accuracy_reason")}
    lines += [""] + [f"Accuracy note: {why}" for why in sorted(reasons)]
    lines += render_promises(report.get("promises") or [])
    found = [g for g in report.get("gains") or []
             if any(v is not None for v in (*g["x_faster_than_pyg"].values(),
                                            *g["x_faster_than_numpy_float32"].values(),
                                            g["x_less_memory_than_numpy_float32"]))]
    if found:
        lines += ["", "Gains (p50 ratios per mode, same device; PyG answers lookup requests "
                  "on the workstation, so both modes are divided into its lookup p50; memory: "
                  "increase over a bare interpreter, the numpy reference's divided by the "
                  "target's):", "",
                  "| device | target | x faster than PyG recommend | x faster than numpy float32 | "
                  "x less memory than numpy float32 |", "|---|---|---|---|---|"]
        for g in found:
            lines.append(
                f"| {g['device']} | {g['name']} ({g.get('quantization') or '–'}) | "
                f"{_per_mode({'v': g['x_faster_than_pyg']}, lambda v: _fmt(v, '.0f'), 'v')} | "
                f"{_per_mode({'v': g['x_faster_than_numpy_float32']}, lambda v: _fmt(v, '.1f'), 'v')} | "
                f"{_fmt(g['x_less_memory_than_numpy_float32'], '.1f')} |")
    lines += _against_faiss(report)
    return "\n".join(lines).rstrip() + "\n"


def _against_faiss(report: Mapping[str, Any]) -> list[str]:
    """The headline table: each local artifact against FAISS and against the physical floor."""
    rows = {(r["device"], r["name"]): r for r in report["rows"] if r["kind"] == "artifact"}
    found = [g for g in report.get("gains") or [] if g.get("x_faster_than_faiss_flat") is not None
             or g.get("recall_vs_faiss_flat") is not None
             or rows.get((g["device"], g["name"]), {}).get("floor_ms") is not None]
    if not found:
        return []
    mem = (report.get("bandwidth") or {}).get("memory") or {}
    lines = ["", "Against FAISS (lookup, batch 1, same machine; FAISS bytes are the index alone, "
             "the target's its model file(s)). Floor: the item table read once, at the rate this "
             "machine reads a buffer of that size (cache speed where it fits the caches"
             + (f"; memory bandwidth {mem['bytes_per_s'] / 1e9:.1f} GB/s, {mem['method']}"
                if mem else "") + "):", "",
             "| device | target | lookup p50 ms | floor ms | x faster than FAISS flat float32 | "
             "x smaller than FAISS flat float32 | Recall@20 vs FAISS flat | "
             "Recall@20 vs FAISS at equal bytes |", "|---|---|---|---|---|---|---|---|"]
    for g in found:
        row = rows.get((g["device"], g["name"]), {})
        p50 = ((row.get("latency_ms") or {}).get("lookup") or {}).get("p50")
        pq = f" ({g['faiss_equal_bytes'].removeprefix('FAISS ')})" if g.get("faiss_equal_bytes") else ""
        lines.append(
            f"| {g['device']} | {g['name']} ({g.get('quantization') or '–'}) | {_fmt(p50)} | "
            f"{_fmt(row.get('floor_ms'), '.4f')} | {_fmt(g.get('x_faster_than_faiss_flat'), '.2f')} | "
            f"{_fmt(g.get('x_smaller_than_faiss_flat'), '.2f')} | "
            f"{_pct(g.get('recall_vs_faiss_flat'))} | {_pct(g.get('recall_vs_faiss_equal_bytes'))}{pq} |")
    return lines


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _bracket(row: Mapping[str, Any]) -> str:
    over = row.get("peak_rss_over_bare_interpreter_bytes")
    return f" ({_size(over)})" if over is not None else ""


def _primary(row: Mapping[str, Any], field: str) -> tuple[str | None, Any]:
    """The row's lookup figure if it has one, else its history figure: every baseline answers
    lookup requests, so the plot compares like with like."""
    vals = row.get(field) or {}
    for m in ("lookup", "history"):
        if vals.get(m) is not None:
            return m, vals[m]
    return None, None


def plot_report(report: Mapping[str, Any], path: Path) -> Path:
    """Recall@20 against file size and against p50 latency: one colour per row, one legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    devices = {r.get("device") for r in report["rows"]}
    for n, row in enumerate(report["rows"]):
        if row.get("error"):
            continue
        mode, acc = _primary(row, "accuracy")
        recall = (acc or {}).get("recall@20")
        if recall is None:
            continue
        quant = (row.get("quantization") or "").split(" / ")[0]
        label = row["name"] + (f" {quant}" if row["kind"] != "baseline" and quant else "") + (
            f" @ {row['device']}" if len(devices) > 1 and row.get("device") else "") + f" [{mode}]"
        style = {"marker": "s" if row["kind"] == "baseline" else "o", "color": f"C{n % 10}",
                 "label": label, "s": 50, "alpha": 0.85}
        lat = (row.get("latency_ms") or {}).get(mode) or _primary(row, "latency_ms")[1]
        if row.get("file_bytes"):
            axes[0].scatter([row["file_bytes"] / (1 << 20)], [recall], **style)
        if lat:
            axes[1].scatter([lat["p50"]], [recall], **style)
    for ax, xl in ((axes[0], "model file size (MB, log)"),
                   (axes[1], "p50 latency, batch 1 (ms, log)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("Recall@20")
        ax.grid(True, which="both", alpha=0.3)
        if ax.collections:
            ax.set_xscale("log")
            ax.margins(x=0.15, y=0.1)
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            # label a few minor ticks only where the axis spans little (no overlapping labels)
            ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
        else:
            ax.text(0.5, 0.5, "no accuracy data (no eval file)", ha="center",
                    transform=ax.transAxes)
    axes[0].set_title("Accuracy vs size")
    axes[1].set_title("Accuracy vs latency")
    handles, labels = axes[1].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), fontsize=8,
                   frameon=False)
    rows = -(-len(handles) // 3) if handles else 0
    fig.tight_layout(rect=(0, 0.04 + 0.035 * rows, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: Mapping[str, Any], report_dir: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` into ``report_dir``."""
    report_dir = Path(report_dir)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"--report {report_dir}: cannot create ({e.strerror})") from None
    paths = {"json": report_dir / "report.json", "md": report_dir / "report.md",
             "png": report_dir / "report.png"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, paths["json"])
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    plot_report(report, paths["png"])
    return paths
