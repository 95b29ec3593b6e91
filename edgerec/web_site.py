"""``edgerec web``: a static site that recommends with an artifact inside the browser.

The site holds the artifact (unchanged, so the page checks the same SHA-256s a device does),
the JavaScript runtime of ``web/src``, the npm packages it imports for the artifact's target
only (LiteRT.js for tflite, onnxruntime-web for onnx), a demo page and ``selftest.html``.
The self-test compares the page's answers with the Python runtime's, which are computed here
and shipped as ``python-answers.json``. The wasm binaries outweigh any model: the report says
how many bytes the page downloads and what they are.

Layout::

    SITE/index.html selftest.html app.js selftest.js style.css site.json python-answers.json
    SITE/artifact/...            the artifact directory, as exported
    SITE/edgerec/*.js            the runtime (web/src), manifest.schema.json beside it
    SITE/edgerec/vendor/...      @litertjs/core + wasm | onnxruntime-web + wasm; @noble/hashes
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgerec.atomic_dir import atomic_directory
from edgerec.errors import EdgerecError

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
SITE_MARKER = "edgerec-site.json"
ANSWER_K = 20  # the eval sample's metrics and the agreement are @20

# What each target's page imports: (npm file, site path). LiteRT.js picks its relaxed-SIMD wasm
# where the browser has relaxed SIMD (Chrome 114+, Firefox 120+) and the "compat" one elsewhere:
# both ship, the page downloads one. Its threaded and JSPI builds need cross-origin isolation or
# flags and gave nothing at this model size. onnxruntime-web's "wasm" bundle has its JS glue
# inside, so the one .wasm is all it fetches.
_LITERT = "node_modules/@litertjs/core"
VENDOR = {
    "tflite": [
        (f"{_LITERT}/dist/index.js", "litert/core.js"),
        ("node_modules/@litertjs/wasm-utils/dist/index.js", "litert/wasm-utils.js"),
        (f"{_LITERT}/wasm/litert_wasm_internal.js", "litert/litert_wasm_internal.js"),
        (f"{_LITERT}/wasm/litert_wasm_internal.wasm", "litert/litert_wasm_internal.wasm"),
        (f"{_LITERT}/wasm/litert_wasm_compat_internal.js", "litert/litert_wasm_compat_internal.js"),
        (f"{_LITERT}/wasm/litert_wasm_compat_internal.wasm", "litert/litert_wasm_compat_internal.wasm"),
    ],
    "onnx": [
        ("node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs", "ort/ort.wasm.bundle.min.mjs"),
        ("node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm", "ort/ort-wasm-simd-threaded.wasm"),
    ],
    "any": [(f"node_modules/@noble/hashes/{f}", f"noble-hashes/{f}")
            for f in ("sha2.js", "_md.js", "_u64.js", "utils.js")],
}
# Files a page does not fetch in Chromium: the compat LiteRT build (relaxed SIMD is there) and
# @noble/hashes (127.0.0.1 is a secure context, so WebCrypto hashes).
NOT_FETCHED = ("litert_wasm_compat_internal", "noble-hashes/")
IMPORT_MAP = {
    "@litertjs/core": "./edgerec/vendor/litert/core.js",
    "@litertjs/wasm-utils": "./edgerec/vendor/litert/wasm-utils.js",
    "onnxruntime-web/wasm": "./edgerec/vendor/ort/ort.wasm.bundle.min.mjs",
    "@noble/hashes/sha2.js": "./edgerec/vendor/noble-hashes/sha2.js",
}
PAGES = ("index.html", "selftest.html", "app.js", "selftest.js", "style.css")


class WebSiteError(EdgerecError):
    """The site cannot be built (artifact target, missing npm packages, output path)."""


@dataclass
class SiteReport:
    """What ``edgerec web`` wrote: the site, the backend and what the page downloads."""

    out: Path
    target: str
    backend: str
    download_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    python_backend: str = ""
    eval_users: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "target": self.target, "backend": self.backend,
                "download_bytes": self.download_bytes, "parts": self.parts,
                "python_backend": self.python_backend, "eval_users": self.eval_users}


def build_site(artifact: str | Path, out: str | Path, *, web_dir: str | Path | None = None,
               overwrite: bool = False) -> SiteReport:
    """Write the static site for ``artifact`` to ``out``.

    Args:
        artifact: An artifact directory of target ``tflite`` or ``onnx``.
        out: The site directory (written atomically: complete, or not at all).
        web_dir: The ``web/`` folder with ``src/`` and an installed ``node_modules/``
            (default: the one beside this package; ``npm ci --prefix web`` installs it).
        overwrite: Replace an earlier ``edgerec web`` output at ``out``.
    """
    import runtime  # numpy and an interpreter: imported when a site is built, not at CLI start

    src_art, out = Path(artifact), Path(out)
    web = Path(web_dir) if web_dir is not None else WEB_DIR
    try:
        rec = runtime.load(src_art)
    except runtime.RuntimeErrorBase as e:
        raise WebSiteError(f"{src_art}: {e}") from None
    target = rec.artifact.target
    if target not in ("tflite", "onnx"):
        raise WebSiteError(f"{src_art}: a {target!r} artifact has no browser interpreter "
                           "(export --target tflite or onnx)")
    missing = [s for s, _ in VENDOR[target] + VENDOR["any"] if not (web / s).is_file()]
    if not (web / "src" / "edgerec.js").is_file() or missing:
        raise WebSiteError(f"{web}: the JavaScript runtime or its npm packages are missing "
                           f"({(missing or ['src/edgerec.js'])[0]}); run 'npm ci --prefix {web}'")
    if out.exists() and not overwrite:
        raise WebSiteError(f"{out} already exists (pass --overwrite to replace an earlier site)")
    answers = python_answers(rec)
    backend = "litert" if target == "tflite" else "onnx"
    with atomic_directory(out) as tmp:
        shutil.copytree(src_art, tmp / "artifact")
        runtime_dir = tmp / "edgerec"
        shutil.copytree(web / "src", runtime_dir, symlinks=False)  # the schema link becomes a file
        for src, dst in VENDOR[target] + VENDOR["any"]:
            (runtime_dir / "vendor" / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(web / src, runtime_dir / "vendor" / dst)
        for page in PAGES:
            text = (web / "site" / page).read_text("utf-8")
            if page.endswith(".html"):
                text = text.replace("<!--IMPORTMAP-->", import_map_tag())
            (tmp / page).write_text(text, "utf-8")
        (tmp / "python-answers.json").write_text(json.dumps(answers), "utf-8")
        parts = download_parts(tmp, target)
        info = {"artifact": "artifact/", "target": target, "backend": backend,
                "download_bytes": sum(parts.values()), "parts": parts,
                "python_backend": answers["backend"]}
        (tmp / "site.json").write_text(json.dumps(info, indent=2), "utf-8")
        (tmp / SITE_MARKER).write_text(json.dumps({"format": "edgerec-site", "version": 1}), "utf-8")
    return SiteReport(out=out, target=target, backend=backend, download_bytes=sum(parts.values()),
                      parts=parts, python_backend=answers["backend"],
                      eval_users=len(answers["users"]))


def import_map_tag() -> str:
    """The ``<script type="importmap">`` that resolves the runtime's bare npm imports."""
    return f'<script type="importmap">{json.dumps({"imports": IMPORT_MAP})}</script>'


def download_parts(site: Path, target: str) -> dict[str, int]:
    """Bytes the demo page fetches in Chromium, by kind: wasm, JavaScript, model, the rest of
    the artifact and the page itself (eval.json and the self-test's files are not fetched)."""
    from runtime.artifact import model_files  # numpy: not when the module is imported

    art = json.loads((site / "artifact" / "manifest.json").read_text())
    used = {art["id_maps"]["users"], art["id_maps"]["items"], art["popular"]}
    if art.get("seen"):
        used |= {art["seen"]["indptr"], art["seen"]["indices"]}
    parts = {"wasm": 0, "javascript": 0, "model": 0, "artifact (ids, popular, seen, manifest)": 0,
             "page": 0}
    for p in sorted((site / "edgerec").rglob("*")):
        rel = p.relative_to(site / "edgerec").as_posix()
        if not p.is_file() or any(x in rel for x in NOT_FETCHED):
            continue
        if rel.startswith("backends/") and rel != f"backends/{'litert' if target == 'tflite' else 'onnx'}.js":
            continue
        parts["wasm" if rel.endswith(".wasm") else "javascript"] += p.stat().st_size
    for name in model_files(art):
        parts["model"] += (site / "artifact" / name).stat().st_size
    for name in used | {"manifest.json"}:
        parts["artifact (ids, popular, seen, manifest)"] += (site / "artifact" / name).stat().st_size
    for page in ("index.html", "app.js", "style.css"):  # site.json: a few hundred bytes more
        parts["page"] += (site / page).stat().st_size
    return parts


def python_answers(rec: Any) -> dict[str, Any]:
    """The Python runtime's top-20 for each eval record and mode (null where a mode cannot
    run), with the score tolerance within which two interpreters may reorder a near-tie."""
    m = rec.manifest
    out: dict[str, Any] = {"backend": rec.backend_name, "k": ANSWER_K,
                           "tolerance": score_tolerance(m), "users": []}
    if m.get("eval") is None:
        return out
    from device_bench.evalfile import EvalFileError, read_eval

    try:
        sample = read_eval(rec.artifact.path(m["eval"]))
    except EvalFileError as e:
        raise WebSiteError(str(e)) from None
    for r in sample.records:
        row: dict[str, Any] = {}
        if "lookup" in rec.modes and r.user is not None:
            row["lookup"] = _answer(rec.recommend(r.user, ANSWER_K))
        if "history" in rec.modes:
            row["history"] = _answer(rec.recommend_from_history(list(r.history), ANSWER_K))
        out["users"].append(row)
    return out


def _answer(recs: list[tuple[Any, float]]) -> dict[str, list[Any]]:
    return {"items": [i for i, _ in recs], "scores": [float(s) for _, s in recs]}


def score_tolerance(manifest: dict[str, Any]) -> float:
    """The relative score difference the exporter measured between the target's interpreters
    and the numpy reference (``metrics.parity``, with and without the default delegates): two
    interpreters may order items whose scores are closer than this either way."""
    found = [1e-6]

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for key, v in x.items():
                if key == "max_relative_score_error" and isinstance(v, int | float) and math.isfinite(v):
                    found.append(float(v))
                else:
                    walk(v)

    walk(manifest.get("metrics", {}).get("parity", {}))
    return max(found)
