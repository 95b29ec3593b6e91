"""The compression search (quantize="auto" x dims="auto" x distillation): what it picks, what
it records, and that the recorded file bytes are the written file's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgerec.checkpoint import load_checkpoint
from edgerec.errors import GuardError
from edgerec.pipeline import CompileOptions, compile_checkpoint
from edgerec.search import Candidate, Space, search
from tests.factories import make_ir


@pytest.fixture(scope="module")
def ckpt(trained_ckpt: Path):
    return load_checkpoint(trained_ckpt)


def _formats(ckpt, **kw):
    """quantize="auto" at the full width, no distillation: a search over the format alone."""
    return compile_checkpoint(ckpt, CompileOptions(quantize="auto", dims=None, distill_epochs=0,
                                                   guard_sample=300, **kw))


def test_search_picks_the_smaller_format_when_both_pass(ckpt) -> None:
    res = _formats(ckpt, max_recall_drop=1.0)
    assert all(t.bits == 4 for t in res.ir.tables.values())  # int4: every table 4-bit
    rows = res.ir.metrics["search"]["candidates"]
    assert {r["format"] for r in rows} == {"int8", "int4-item", "int4", "int4-pq"}
    assert all(r["accepted"] for r in rows)
    # here product codes lose: each 16-dim codebook (256 centroids a subspace) outweighs the
    # bytes its codes save on a few hundred rows
    pq = next(r for r in rows if r["format"] == "int4-pq")
    assert pq["table_bytes"] > next(r for r in rows if r["format"] == "int4")["table_bytes"]
    chosen = [r for r in rows if r["chosen"]]
    assert [r["format"] for r in chosen] == ["int4"]
    assert chosen[0]["table_bytes"] == min(r["table_bytes"] for r in rows) == res.ir.nbytes


def test_search_keeps_the_larger_format_when_the_smaller_breaks_the_guard(ckpt) -> None:
    both = {r["format"]: r for r in _formats(ckpt, max_recall_drop=1.0).search}
    agreement = {f: min(both[f]["lookup/agreement@20"], both[f]["history/agreement@20"]) for f in both}
    assert agreement["int8"] > max(agreement["int4"], agreement["int4-item"])
    # a floor between int8 and the 4-bit formats: int8 holds it, neither 4-bit format does
    floor = (agreement["int8"] + max(agreement["int4"], agreement["int4-item"])) / 2
    res = _formats(ckpt, max_recall_drop=1.0, min_agreement=floor)
    rows = {r["format"]: r for r in res.search}
    assert rows["int8"]["accepted"] and not rows["int4"]["accepted"]
    assert rows["int8"]["chosen"] and res.ir.tables["item"].dtype == "int8"
    assert res.ir.tables["item"].bits != 4 and res.ir.metrics["guard_violations"] == []
    with pytest.raises(GuardError, match="every candidate"):
        _formats(ckpt, max_recall_drop=1.0, min_agreement=1.01)


def _fake(accept: set[Candidate]):
    """evaluate/size for :func:`search` on made-up IRs: bytes grow with width and bits."""
    bits = {"int8": 8, "int4": 4}
    tried: list[Candidate] = []
    base = make_ir()

    def table_bytes(c: Candidate) -> int:
        return bits[c.scheme] * (c.width or 64)

    def evaluate(c: Candidate):
        tried.append(c)
        ir = base.replace(metrics={"nbytes": table_bytes(c)})
        return ir, {"lookup/recall@20": 0.5}, c in accept

    return tried, evaluate, table_bytes


def test_search_binary_searches_widths_and_distils_only_where_it_can_pay(monkeypatch) -> None:
    from edgerec.ir import IR

    monkeypatch.setattr(IR, "nbytes", property(lambda self: self.metrics["nbytes"]))
    widths = (8, 16, 32, None)
    accept = {Candidate("int8", w, False) for w in (16, 32, None)}
    accept |= {Candidate("int4", w, False) for w in (32, None)}
    accept |= {Candidate("int8", 8, True), Candidate("int4", 16, True), Candidate("int4", 8, True)}
    tried, evaluate, table_bytes = _fake(accept)
    out = search(Space(("int8", "int4"), widths, (False, True)), evaluate,
                 lambda ir: ir.nbytes + 1000, table_bytes, budget=60)
    assert out.chosen == Candidate("int4", 8, True)
    assert [r["file_bytes"] for r in out.rows if r["chosen"]] == [1032]
    distilled = [c for c in tried if c.distilled]
    # never a width the undistilled search already accepted, never one that cannot beat the best
    assert Candidate("int4", 32, True) not in distilled and Candidate("int8", 16, True) not in distilled
    assert all(table_bytes(c) < 4 * 32 for c in distilled)
    # from the widest narrower width down, while it pays
    assert distilled == [Candidate("int4", 16, True), Candidate("int4", 8, True)]
    # undistilled: a binary search, not every width
    assert len([c for c in tried if not c.distilled and c.scheme == "int8"]) < len(widths)


def test_search_budget_keeps_the_best_so_far(monkeypatch) -> None:
    from edgerec.ir import IR

    monkeypatch.setattr(IR, "nbytes", property(lambda self: self.metrics["nbytes"]))
    accept = {Candidate(s, w, d) for s in ("int8", "int4") for w in (8, 16, 32, None) for d in (False, True)}
    tried, evaluate, table_bytes = _fake(accept)
    out = search(Space(("int8", "int4"), (8, 16, 32, None), (False, True)), evaluate,
                 lambda ir: ir.nbytes, table_bytes, budget=0)
    assert len(tried) == 1 and out.chosen == tried[0]  # one accepted, then out of time


def test_default_compile_records_the_search_and_the_manifest_carries_it(trained_ckpt, tmp_path) -> None:
    import edgerec

    compiled = edgerec.compile(trained_ckpt, max_recall_drop=0.05, distill_epochs=0)
    record = compiled.ir.metrics["search"]
    assert record["ranked_by"] == "tflite model bytes"
    assert all("seconds" not in r for r in record["candidates"])
    assert all("seconds" in r for r in compiled.search)  # the printed table has the times
    chosen = [r for r in record["candidates"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["dims"] == compiled.ir.dim
    out = edgerec.export(compiled, tmp_path / "art", target="tflite")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["search"] == record
    # the bytes the search ranked by are the bytes written
    assert chosen[0]["file_bytes"] == (out / "model.tflite").stat().st_size


def test_distilled_descent_goes_past_one_refusal_and_stops_at_two(monkeypatch) -> None:
    from edgerec.ir import IR

    monkeypatch.setattr(IR, "nbytes", property(lambda self: self.metrics["nbytes"]))
    widths = (4, 8, 12, 16, 24, None)
    # undistilled only the full width passes; distilled, 24 fails but 16 and 12 pass (distillation
    # recovers more where pruning lost more), then 8 and 4 fail
    accept = {Candidate("int4", None, False), Candidate("int4", 16, True), Candidate("int4", 12, True)}
    tried, evaluate, table_bytes = _fake(accept)
    out = search(Space(("int4",), widths, (False, True)), evaluate, lambda ir: ir.nbytes, table_bytes,
                 budget=60)
    assert out.chosen == Candidate("int4", 12, True)
    assert [c.width for c in tried if c.distilled] == [24, 16, 12, 8, 4]

    accept = {Candidate("int4", None, False), Candidate("int4", 8, True)}
    tried, evaluate, table_bytes = _fake(accept)
    out = search(Space(("int4",), widths, (False, True)), evaluate, lambda ir: ir.nbytes, table_bytes,
                 budget=60)
    assert [c.width for c in tried if c.distilled] == [24, 16]  # two refusals in a row: stop
    assert out.chosen == Candidate("int4", None, False)
