"""The browser runtime: node unit tests, one manifest schema for both runtimes, the site
builder, and int8/float32 artifacts of both targets answering in a real headless Chromium
exactly as the Python runtime does; a tampered artifact refused on the page."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgerec.web_browser import browser_missing, open_page, serve_site
from edgerec.web_site import WEB_DIR, WebSiteError, build_site
from tests.factories import make_ir

IN_CI = bool(os.environ.get("CI"))
NODE_READY = shutil.which("node") is not None and (WEB_DIR / "node_modules").is_dir()


def need(reason: str | None) -> None:
    """Skip with the reason outside CI; in CI the browser tests must run."""
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


def need_node() -> None:
    need(None if NODE_READY else f"node or {WEB_DIR}/node_modules missing (npm ci --prefix web)")


def test_node_unit_tests():
    need_node()
    proc = subprocess.run(["node", "--test", "test/"], cwd=WEB_DIR, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout


def _mutations(base: dict, n: int, seed: int = 0) -> list[dict]:
    """``n`` manifests, each ``base`` with one or two values replaced or removed."""
    vals = [None, True, False, 0, 1, -1, 1.5, 2**31, "", "x", "../a", "/etc", "manifest.json", [],
            {}, ["lookup"], ["history"], ["lookup", "lookup"], {"kind": "mlp"},
            {"kind": "mlp", "hidden": 3}, {"kind": "gat", "negative_slope": "a"}, "0" * 64,
            "int8-per-row", "float", "numpy", "onnx", "tflite", 20, 50, [1], [True]]

    def paths(x, pre=()):
        yield pre
        if isinstance(x, dict):
            for k, v in x.items():
                yield from paths(v, (*pre, k))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                yield from paths(v, (*pre, i))

    rng = random.Random(seed)
    ps = [p for p in paths(base) if p]
    out = []
    for _ in range(n):
        m = json.loads(json.dumps(base))
        for _ in range(rng.choice([1, 1, 2])):
            p = rng.choice(ps)
            cur = m
            try:
                for k in p[:-1]:
                    cur = cur[k]
                if rng.random() < 0.2 and isinstance(cur, dict):
                    cur.pop(p[-1], None)
                else:
                    cur[p[-1]] = rng.choice(vals)
            except (KeyError, IndexError, TypeError):
                pass
        out.append(m)
    return out


def test_one_schema_two_runtimes_same_verdicts(tmp_path):
    """Mutated manifests: the JavaScript validator accepts exactly those the Python runtime
    accepts, and refuses the others with the same message (up to Python/JSON quoting)."""
    need_node()
    from runtime.artifact import default_signatures, validate_manifest
    from runtime.errors import ArtifactError
    from tests.factories import numpy_artifact, small_ir

    art = numpy_artifact(small_ir(num_users=10, num_items=40), tmp_path / "np")
    base_np = json.loads((art / "manifest.json").read_text())
    base_tf = base_np | {"target": "tflite"}
    base_tf.pop("tables")
    base_tf["signatures"] = default_signatures("tflite", base_np["modes"], base_np["k"],
                                               base_np["history_capacity"],
                                               base_np["exclude_capacity"])
    base_tf["files"] = base_np["files"] | {"model.tflite": "0" * 64}
    cases = _mutations(base_np, 800, seed=1) + _mutations(base_tf, 800, seed=2) + [base_np, base_tf]
    want = []
    for m in cases:
        try:
            validate_manifest(m)
            want.append(None)
        except ArtifactError as e:
            want.append(str(e))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = (
        "import { validateManifest } from './src/artifact.js';"
        "import { readFileSync } from 'node:fs';"
        "const cases = JSON.parse(readFileSync(process.argv[1], 'utf8'));"
        "const out = cases.map((m) => { try { validateManifest(m); return null; } "
        "catch (e) { return e.message; } });"
        "process.stdout.write(JSON.stringify(out));")
    proc = subprocess.run(["node", "--input-type=module", "-e", script, str(tmp_path / "cases.json")],
                          cwd=WEB_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert want[-2:] == [None, None] and got[-2:] == [None, None]
    assert sum(w is None for w in want) > 20 and sum(w is not None for w in want) > 1000

    def norm(s: str) -> str:  # Python reprs vs JSON: quotes, None/True/False
        return (s.replace("'", '"').replace("None", "null").replace("True", "true")
                .replace("False", "false").replace(", ", ",").replace(": ", ":"))

    for m, w, g in zip(cases, want, got, strict=True):
        assert (w is None) == (g is None), (m, w, g)
        if w is not None:
            assert norm(w) == norm(g), (w, g)


# ---------------------------------------------------------------------------------------------
# Site builder


def _eval_bytes(ir, users: int = 40, seed: int = 0) -> bytes:
    from device_bench.evalfile import encode_eval

    rng = np.random.default_rng(seed)
    records = []
    for u in rng.choice(ir.num_users, users, replace=False):
        hist = [ir.item_ids[i] for i in ir.seen(int(u))]
        test = [ir.item_ids[i] for i in rng.choice(ir.num_items, 5, replace=False)]
        records.append({"user": ir.user_ids[int(u)], "history": hist, "test": test,
                        "reference": {"lookup": test[:3], "history": test[:3]}})
    return encode_eval(records, k=20, item_ids=ir.item_ids, user_ids=ir.user_ids)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """int8, int4 (INT4 tables, float16 scales), int4-pq (product-coded user and history rows)
    and float32 artifacts of both targets, with an eval sample."""
    from edgerec.passes.quantize import quantize

    exporters = pytest.importorskip("exporters")
    root = tmp_path_factory.mktemp("web-artifacts")
    ir = make_ir(num_users=80, num_items=300, dim=16, seed=3)
    extra = {"eval.json": _eval_bytes(ir)}
    out = {}
    for scheme in ("int8", "int4", "int4-pq", "float32"):
        q = quantize(ir, scheme)[0] if scheme != "float32" else ir
        for target in ("tflite", "onnx"):
            path = root / f"{target}-{scheme}"
            exporters.export_ir(q, path, target, k=30, history_capacity=12, extra_files=extra)
            out[(target, scheme)] = path
    return out


def test_site_refuses_what_it_cannot_serve(tmp_path):
    from tests.factories import numpy_artifact, small_ir

    art = numpy_artifact(small_ir(num_users=10, num_items=40), tmp_path / "np")
    with pytest.raises(WebSiteError, match="no browser interpreter"):
        build_site(art, tmp_path / "site")
    with pytest.raises(WebSiteError, match="not an edgerec artifact"):
        build_site(tmp_path, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_site_layout_and_download_count(artifacts, tmp_path):
    need_node()
    site = tmp_path / "site"
    rep = build_site(artifacts[("onnx", "int8")], site)
    assert rep.backend == "onnx" and rep.eval_users == 40
    assert (site / "artifact" / "manifest.json").is_file()
    assert not (site / "edgerec" / "vendor" / "litert").exists()  # only the target's wasm
    assert (site / "edgerec" / "manifest.schema.json").read_bytes() == \
        (Path(__file__).parents[1] / "runtime" / "manifest.schema.json").read_bytes()
    info = json.loads((site / "site.json").read_text())
    assert info["download_bytes"] == sum(info["parts"].values()) == rep.download_bytes
    assert info["parts"]["wasm"] > info["parts"]["model"]  # the interpreter outweighs the model
    # the model: both mode files and the tables.bin they share (ONNX external data)
    assert info["parts"]["model"] == sum((site / "artifact" / f).stat().st_size
                                         for f in ("lookup.onnx", "history.onnx", "tables.bin"))
    assert '<script type="importmap">' in (site / "index.html").read_text()
    answers = json.loads((site / "python-answers.json").read_text())
    assert len(answers["users"]) == 40 and len(answers["users"][0]["history"]["items"]) == 20
    with pytest.raises(WebSiteError, match="already exists"):
        build_site(artifacts[("onnx", "int8")], site)
    build_site(artifacts[("tflite", "int8")], site, overwrite=True)
    assert not (site / "edgerec" / "vendor" / "ort").exists()


# ---------------------------------------------------------------------------------------------
# In Chromium


def need_browser() -> None:
    need(browser_missing())


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "onnx"])
@pytest.mark.parametrize("scheme", ["int8", "int4", "int4-pq", "float32"])
def test_browser_answers_like_python(artifacts, tmp_path, target, scheme):
    """The selftest page answers the eval sample with the Python runtime's top-20 (identical,
    or reordered near-ties within the interpreters' own tolerance) and the same Recall@20."""
    need_browser()
    site = tmp_path / "site"
    build_site(artifacts[(target, scheme)], site)
    with serve_site(site) as served:
        page = open_page(served.url + "selftest.html", wait="pre[data-done]", timeout_s=240)
    assert page["done"] == "ok", page
    r = json.loads(page["text"])
    assert r["backend"] == ("litert" if target == "tflite" else "onnx")
    assert r["sha256"] == "webcrypto" and r["users"] == 40
    for mode in ("lookup", "history"):
        m = r["modes"][mode]
        assert m["queries"] == 40
        assert m["mismatches"] == [], m["mismatches"][:3]
        assert m["identical"] + len(m["near_ties"]) == 40
        assert m["agreement@20"] == 1
        if not m["near_ties"]:
            assert m["recall@20"] == pytest.approx(m["python_recall@20"], abs=1e-12)
        assert m["p50_ms"] is not None and m["p95_ms"] >= m["p50_ms"]


def _flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_browser_refuses_a_tampered_artifact_on_the_page(artifacts, tmp_path):
    need_browser()
    site = tmp_path / "site"
    build_site(artifacts[("tflite", "int8")], site)
    _flip_a_byte(site / "artifact" / "model.tflite")
    with serve_site(site) as served:
        demo = open_page(served.url + "index.html", timeout_s=120)
        test = open_page(served.url + "selftest.html", wait="pre[data-done]", timeout_s=120)
    assert demo["state"] == "error"
    assert "ChecksumError" in demo["error"] and "model.tflite does not match its SHA-256" in demo["error"]
    assert test["done"] == "error" and "model.tflite does not match its SHA-256" in test["text"]
    # and an edited manifest (a hash no longer matching its file) the same way
    build_site(artifacts[("onnx", "float32")], site, overwrite=True)
    man = site / "artifact" / "manifest.json"
    m = json.loads(man.read_text())
    m["files"]["popular.npy"] = "f" * 64
    man.write_text(json.dumps(m))
    with serve_site(site) as served:
        demo = open_page(served.url + "index.html", timeout_s=120)
    assert demo["state"] == "error" and "popular.npy does not match its SHA-256" in demo["error"]
    # the tables the ONNX mode files share are hashed like the models
    build_site(artifacts[("onnx", "float32")], site, overwrite=True)
    _flip_a_byte(site / "artifact" / "tables.bin")
    with serve_site(site) as served:
        demo = open_page(served.url + "index.html", timeout_s=120)
    assert demo["state"] == "error" and "tables.bin does not match its SHA-256" in demo["error"]


@pytest.mark.slow
def test_demo_page_recommends_and_updates(artifacts, tmp_path):
    need_browser()
    site = tmp_path / "site"
    build_site(artifacts[("onnx", "int8")], site)
    with serve_site(site) as served:
        page = open_page(served.url + "index.html", clicks=("#popular button", "#recs li"),
                         screenshot=tmp_path / "demo.png", timeout_s=120)
    assert page["state"] == "ready", page
    assert page["error"] in (None, "")
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert "from your 2 item(s)" in page["text"]


def test_browser_labels_say_when_they_are_emulated():
    from edgerec.benchmark.browser import browser_label

    assert browser_label(1) == "browser (wasm)"
    assert browser_label(4) == "browser (wasm, emulated 4x slower CPU)"


@pytest.mark.slow
def test_bench_browser_rows_fold_into_the_bench_report(artifacts):
    """A throttled run in real time: the page POSTs its samples to the local server and they
    become a bench-report row the report merger accepts, labelled as emulated."""
    need_browser()
    from edgerec.benchmark import baseline_row
    from edgerec.benchmark.browser import browser_baselines
    from edgerec.benchmark.labels import artifact_labels

    art = artifacts[("onnx", "int8")]
    (row,) = browser_baselines([art], cpu_throttle=2)
    # named for what the artifact is, as the native rows are
    assert artifact_labels([art])[art].startswith("ONNX int8, ")
    assert row["name"] == f"{artifact_labels([art])[art]} browser (wasm, emulated 2x slower CPU)"
    checked = baseline_row(row)
    assert checked["modes"] == ["history", "lookup"]
    for mode in ("history", "lookup"):
        assert row["modes"][mode]["latency"]["count"] == 40
        assert 0 <= row["accuracy"][mode]["recall@20"] <= 1
    assert "timer step 0.005 ms" in row["note"]  # served cross-origin isolated
    assert "lookup 40/40" in row["note"] or "near-ties" in row["note"]


def test_cli_web_prints_the_download_and_refuses_in_one_line(artifacts, tmp_path):
    need_node()
    from tests.factories import assert_one_line_error, numpy_artifact, run, small_ir

    out = run("web", str(artifacts[("tflite", "float32")]), "--out", str(tmp_path / "site")).stdout
    info = json.loads((tmp_path / "site" / "site.json").read_text())
    assert f"the page downloads {info['download_bytes']:,} bytes" in out
    assert "wasm" in out and (tmp_path / "site" / "selftest.html").is_file()
    art = numpy_artifact(small_ir(num_users=10, num_items=40), tmp_path / "np")
    assert_one_line_error(run("web", str(art), "--out", str(tmp_path / "s2"), ok=False),
                          "has no browser interpreter")
    assert_one_line_error(run("web", str(artifacts[("onnx", "int8")]), "--out",
                              str(tmp_path / "site"), ok=False), "already exists")
    assert_one_line_error(run("bench", str(art), "--report", str(tmp_path / "r"), "--browser",
                              ok=False), "none of the artifacts is a tflite or onnx artifact")
    assert not (tmp_path / "s2").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_demo_page_serves_a_lookup_only_artifact(tmp_path):
    """Without history mode the demo shows a known user's recommendations (lookup)."""
    need_browser()
    exporters = pytest.importorskip("exporters")
    ir = make_ir(num_users=30, num_items=120, dim=8, seed=5, modes=("lookup",))
    art = tmp_path / "art"
    exporters.export_ir(ir, art, "onnx", k=20, extra_files={"eval.json": _eval_bytes(ir, users=10)})
    build_site(art, tmp_path / "site")
    with serve_site(tmp_path / "site") as served:
        page = open_page(served.url + "index.html", clicks=("#borrow",), timeout_s=120)
        test = open_page(served.url + "selftest.html", wait="pre[data-done]", timeout_s=120)
    assert page["state"] == "ready" and "(lookup mode)" in page["text"], page
    r = json.loads(test["text"])
    assert list(r["modes"]) == ["lookup"] and r["modes"]["lookup"]["identical"] == 10
