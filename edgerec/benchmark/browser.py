"""``edgerec bench --browser``: an artifact measured inside headless Chromium.

For each artifact: build its ``edgerec web`` site in a temporary directory, serve it on
127.0.0.1 (cross-origin isolated, so ``performance.now()`` ticks in 5 us steps), open
``selftest.html?report=1`` in a fresh headless Chromium in real time, and take the JSON the
page POSTs back: per-call latencies over the eval sample, Recall@20 / NDCG@20, agreement with
the float reference. Each becomes a row of the bench report (a precomputed baseline in
``edgerec.benchmark``'s terms), named "browser (wasm)", or "browser (wasm, emulated Nx slower CPU)"
with DevTools CPU throttling, a rough mobile-class estimate rather than a measurement on a
phone.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgerec.benchmark.labels import artifact_labels
from edgerec.web_browser import open_page, serve_site
from edgerec.web_site import WEB_DIR, WebSiteError, build_site
from runtime.artifact import model_files

MODES = ("history", "lookup")


def browser_label(cpu_throttle: float) -> str:
    """The report's name for this way of running: emulation is said so."""
    if cpu_throttle > 1:
        return f"browser (wasm, emulated {cpu_throttle:g}x slower CPU)"
    return "browser (wasm)"


def run_browser(artifact: Path, *, cpu_throttle: float = 1, web_dir: Path = WEB_DIR,
                timeout_s: float = 900) -> dict[str, Any]:
    """The self-test's report for ``artifact``, as the page POSTed it (latency samples kept)."""
    if not cpu_throttle >= 1 or cpu_throttle > 20:
        raise WebSiteError(f"--cpu-throttle must be between 1 and 20, got {cpu_throttle!r}")
    with tempfile.TemporaryDirectory(prefix="edgerec-browser-") as tmp:
        site = Path(tmp) / "site"
        build_site(artifact, site, web_dir=web_dir)
        if not (site / "artifact" / "eval.json").is_file():
            raise WebSiteError(f"{artifact}: no eval sample to measure with (export --with-eval)")
        with serve_site(site) as served:
            page = open_page(served.url + "selftest.html?report=1", wait="pre[data-done]",
                             cpu_throttle=cpu_throttle, timeout_s=timeout_s, web_dir=web_dir)
            deadline = time.monotonic() + 30  # the POST follows the page's last write
            while not served.reports and time.monotonic() < deadline:
                time.sleep(0.1)
        if not served.reports:
            raise WebSiteError(f"{artifact}: the self-test page sent no report ({page.get('text', '')[:200]})")
        report = served.reports[-1]
        if "error" in report:
            raise WebSiteError(f"{artifact}: in the browser: {report['error']}")
        report["chromium"] = page.get("chromium")
        report["cpu_throttle"] = cpu_throttle
        report["model_bytes"] = sum((site / "artifact" / f).stat().st_size
                                    for f in model_files(_manifest(site)))
        report["quantization"] = _manifest(site)["quantization"]
        return report


def _manifest(site: Path) -> dict[str, Any]:
    return json.loads((site / "artifact" / "manifest.json").read_text())


def baseline_from_report(name: str, report: dict[str, Any]) -> dict[str, Any]:
    """A bench-report baseline (``edgerec.benchmark.baseline_row`` keys) from a self-test report."""
    from device_bench.measure import latency_summary

    label = browser_label(report.get("cpu_throttle", 1))
    q = report.get("quantization") or {}
    modes, acc = {}, {}
    for mode in MODES:
        m = report["modes"].get(mode)
        if not m or not m.get("samples_ms"):
            continue
        modes[mode] = {"latency": latency_summary([int(round(x * 1e6)) for x in m["samples_ms"]])}
        acc[mode] = {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                     "agreement@20": m.get("agreement@20_vs_float")}
    quant = q.get("weights") if q.get("activations") in (None, "float") else \
        f"{q.get('weights')} / {q.get('activations')}"
    return {
        "name": f"{name} {label}", "device": f"Chromium {report.get('chromium')} on {platform.node()}",
        "target": f"{report['target']} in {report['backend']} wasm", "quantization": quant,
        "file_bytes": report["model_bytes"], "init_ms": report["load_ms"], "modes": modes,
        "accuracy": acc,
        "note": (f"{label}: {report['build']}; timer step {report['timer_resolution_ms']:.3f} ms; "
                 f"top-20 identical to the Python runtime ({report['python_backend']}) for "
                 + ", ".join(f"{md} {v['identical']}/{v['queries']}" for md, v in report["modes"].items())
                 + (f", near-ties {sum(len(v['near_ties']) for v in report['modes'].values())}"
                    if any(v["near_ties"] for v in report["modes"].values()) else "")),
    }


def browser_targets(artifacts: Sequence[str | Path]) -> list[Path]:
    """The artifacts a browser can run (tflite, onnx); refuses a list with none."""
    out = []
    for a in artifacts:
        try:
            target = json.loads((Path(a) / "manifest.json").read_text()).get("target")
        except (OSError, ValueError, AttributeError):
            continue
        if target in ("tflite", "onnx"):
            out.append(Path(a))
    if not out:
        raise WebSiteError("--browser: none of the artifacts is a tflite or onnx artifact")
    return out


def browser_baselines(artifacts: Sequence[str | Path], *, cpu_throttle: float = 1,
                      web_dir: Path = WEB_DIR) -> list[dict[str, Any]]:
    """One bench-report baseline per artifact, measured in headless Chromium.

    Args:
        artifacts: Artifact directories (tflite or onnx, exported ``--with-eval``).
        cpu_throttle: DevTools CPU throttling rate; above 1 the rows say "emulated".
        web_dir: The ``web/`` folder (JS runtime and npm packages).
    """
    labels = artifact_labels([Path(a) for a in artifacts])
    return [baseline_from_report(label, run_browser(a, cpu_throttle=cpu_throttle, web_dir=web_dir))
            for a, label in labels.items()]
