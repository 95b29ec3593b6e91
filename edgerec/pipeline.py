"""The compiler driver: checkpoint (or final embeddings) -> lowering -> passes -> guard -> IR.

The source is lowered once (:func:`edgerec.lowering.lower`); every later step is a pass
(:class:`edgerec.passes.base.Pass`, ``IR -> IR``) run by a
:class:`edgerec.passes.manager.PassManager`, which checks and measures after each. This module
only decides which passes run with which options; what ``quantize="auto"`` / ``dims="auto"``
leave open (format, width, distillation) is searched by :mod:`edgerec.search`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgerec.checkpoint import Checkpoint
from edgerec.data import Interactions, Split
from edgerec.errors import EdgerecError, GuardError
from edgerec.ir import IR, PassReport
from edgerec.lowering import lower
from edgerec.lowering.embeddings import Embeddings, lower_embeddings
from edgerec.metrics import users_with_items
from edgerec.passes.base import Pass
from edgerec.passes.distill import Distill
from edgerec.passes.distill_history import DistillHistory
from edgerec.passes.drop_cold import DropColdItems
from edgerec.passes.finetune_head import FinetuneHead
from edgerec.passes.guard import Guard, GuardData, check, measure
from edgerec.passes.manager import PassManager
from edgerec.passes.prune import PruneDims, energy_dims
from edgerec.passes.prune_channels import PruneEncoderChannels
from edgerec.passes.prune_head import PruneHead
from edgerec.passes.quantize import Quantize
from edgerec.schemes import DOT_SCORER_ONLY
from edgerec.search import Candidate, Space, public_format, record, search
from edgerec.uncertainty import paired_drop_bound
from runtime.weights import STORAGES

# Without held-out interactions the guard cannot measure recall; it holds the compiled model's
# top-20 to the float model's instead. Agreement falls faster than recall under rank reduction,
# so this floor is conservative: it keeps more width than a recall budget would.
NO_LABELS_AGREEMENT = 0.9
# quantize="auto": the number formats searched (docs/compression.md), widest first
AUTO_FORMATS = ("int8", "int4-item", "int4", "int4-pq")
INTEGER_FORMATS = tuple(s.number_format for s in STORAGES if s.integer)
# the rounding each format's distillation is aware of (passes/distill.py's quant_bits)
DISTILL_BITS = {"int8": 8, "int4": 4, "int4-pq": 4}
# distillation epochs where the search tries it (docs/compression.md: LastFM, 3 epochs)
AUTO_DISTILL_EPOCHS = 3

# History mode must keep this share of lookup mode's Recall@20 in the float model; below it the
# compile first trains the history tables toward lookup mode (passes/distill_history.py).
HISTORY_SHARE = 0.97


@dataclass
class CompileOptions:
    modes: tuple[str, ...] = ("lookup", "history")
    dims: int | str | None = "auto"   # int, "auto", or None (keep the full width)
    energy: float | None = None
    method: str = "svd"
    quantize: str = "int8"             # a scheme of edgerec.schemes, or "auto" (searched)
    max_recall_drop: float = 0.02
    recall_margin: float | None = 0.95   # bootstrap quantile of the drop the guard holds (None: point)
    min_agreement: float | None = None
    force: bool = False
    min_item_count: int = 0
    guard_sample: int = 2000
    new_user: str = "mean"            # sage/gcn: what a user without a base vector gets
    head_keep: float | int | None = None      # MLP head: fraction (or number) of hidden neurons kept
    head_importance: str = "activation"
    channel_keep: float | int | None = None   # encoder output channels kept (structured)
    finetune_epochs: int = 0                  # BPR epochs on the pruned head
    distill_epochs: int | None = 0            # distil the pruned tables (None: searched)
    distill_users: int | None = 8192          # users per distillation epoch (None: all)
    search_budget: float = 10.0               # minutes
    progress: bool = False                    # the search's progress bar on stderr
    file_bytes: Callable[[IR], int] | None = None  # the search's size: exported file bytes
    ranked_by: str = "table bytes"            # what file_bytes measures, for the record
    history_fix: bool = True                  # train history toward lookup when it falls short


@dataclass
class CompileResult:
    ir: IR
    reports: list[PassReport] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)
    reference: IR | None = None  # the float model the guard held ``ir`` to


def _candidate_widths(d: int) -> list[int]:
    # eighths above half the width: the guard's margin often settles between d/2 and d, where a
    # step of d/4 costs a quarter of the file (docs/compression.md)
    cands = {d, 7 * d // 8, 3 * d // 4, 5 * d // 8, d // 2, 3 * d // 8, d // 4, 3 * d // 16, d // 8}
    return sorted(w for w in cands if w >= 4 or w == d)


def compile_checkpoint(ckpt: Checkpoint, options: CompileOptions, data: Interactions | None = None,
                       log: Callable[[str], None] = lambda _m: None) -> CompileResult:
    """Run the passes on ``ckpt``. Guard metrics use ``data.valid`` (default: the checkpoint's)."""
    source = data if data is not None else ckpt.data
    if source.num_users != ckpt.data.num_users or source.num_items != ckpt.data.num_items:
        raise EdgerecError(f"--data has {source.num_users} users and {source.num_items} items; "
                           f"the checkpoint was trained on {ckpt.data.num_users} and {ckpt.data.num_items}")
    model, head = ckpt.config.get("model", "lightgcn"), ckpt.config.get("head", "dot")
    _check_options(model, head, options)
    ir, first = lower(ckpt, options.modes, options.new_user)
    counts = np.bincount(ckpt.data.train.items, minlength=ckpt.data.num_items)
    return compile_lowered(ir, first, options, source.valid.csr(source.num_users), counts, log)


def compile_embeddings(emb: Embeddings, options: CompileOptions,
                       log: Callable[[str], None] = lambda _m: None) -> CompileResult:
    """Run the passes on final tables (:func:`edgerec.from_embeddings`); the guard uses their
    ``valid`` pairs, or top-20 agreement with the float tables without them."""
    if options.min_item_count > 0 and emb.train[0].size == 0:
        raise EdgerecError("--min-item-count counts training interactions; from_embeddings was "
                           "given none")
    _check_options("embeddings", "dot", options)
    ir, first = lower_embeddings(emb, options.modes)
    U, I = len(emb.user_ids), len(emb.item_ids)
    truth = Split(*emb.valid).csr(U)
    return compile_lowered(ir, first, options, truth, np.bincount(emb.train[1], minlength=I), log)


def _check_options(model: str, head: str, options: CompileOptions) -> None:
    if options.dims is not None and options.energy is not None:
        raise EdgerecError("give either --dims or --energy, not both")
    if (options.distill_epochs or 0) > 0 and model != "lightgcn":
        raise EdgerecError("--distill-epochs needs a LightGCN model (a dot-product scorer and the "
                           f"LightGCN history fold), not {model!r}")
    if options.quantize in DOT_SCORER_ONLY and head == "mlp":
        raise EdgerecError(f"--quantize {options.quantize} packs the dot scorer's tables; this model "
                           "scores with an MLP head (use int8)")
    _check_program_options(model, head, options)


def compile_lowered(ir: IR, first: PassReport, options: CompileOptions,
                    truth: tuple[np.ndarray, np.ndarray], item_counts: np.ndarray,
                    log: Callable[[str], None] = lambda _m: None) -> CompileResult:
    """Run the passes on a lowered float IR.

    Args:
        ir (IR): the float IR (the lowering's output).
        first (PassReport): the lowering's report.
        options (CompileOptions): what to run.
        truth (tuple of np.ndarray): held-out items per user (CSR over ``ir``'s users); empty
            means the guard holds top-20 agreement instead.
        item_counts (np.ndarray): training interactions per item (``min_item_count``).
        log (callable, optional): receives one line per step.
    """
    reports: list[PassReport] = [first]
    log(f"precompute: {ir.num_users} users, {ir.num_items} items, dim {ir.dim}")
    item_ids, labelled = ir.item_ids, truth[1].size > 0
    if options.min_item_count > 0:
        run = PassManager([DropColdItems(options.min_item_count, item_counts)]).run(ir)
        ir = run.ir
        reports += run.reports
    reference = ir
    if options.min_item_count > 0:
        truth = _remap_truth(truth, item_ids, ir.item_ids)
    gdata = GuardData.from_truth(truth, ir.num_users, options.guard_sample, margin=options.recall_margin)
    if not labelled and options.min_agreement is None:
        options = dataclasses.replace(options, min_agreement=NO_LABELS_AGREEMENT)
        log(f"no held-out interactions: the guard holds top-20 agreement >= {NO_LABELS_AGREEMENT} "
            "with the float model instead of a Recall@20 budget")
    ref_metrics = measure(reference, reference, gdata)
    if options.history_fix and history_falls_short(reference, ref_metrics, gdata):
        reports[-1] = dataclasses.replace(reports[-1], metrics_after=ref_metrics)
        reference, ref_metrics, fix = _fix_history(reference, ref_metrics, gdata, log)
        ir = reference
        reports.append(fix)
    # one Distill pass per rounding it is aware of, for the search and the final run: each keeps
    # its result per input width, so a width is distilled once
    tunes: dict[str, Distill] = {}

    linear_ok = dims_prunable(reference) and options.channel_keep is None
    # dims="auto" at the full width: the prune's rotation alone (scores unchanged), which spreads
    # each row's energy over its coordinates before integer rounding, as at every narrower width
    rotate_full = linear_ok and options.dims == "auto" and options.method == "svd"

    def narrowing(c: Candidate) -> list[Pass]:
        """The passes that make ``reference`` ``c.width`` wide, distil it and quantize it."""
        passes: list[Pass] = []
        if c.width is not None and c.width < reference.dim:
            passes.append(PruneDims(c.width, options.method))
            if c.distilled:
                if c.scheme not in tunes:
                    tunes[c.scheme] = _distill_pass(reference, options, c.scheme, log)
                passes.append(tunes[c.scheme])
        elif rotate_full and c.scheme in INTEGER_FORMATS:
            passes.append(PruneDims(reference.dim, options.method))
        if c.scheme != "none":
            passes.append(Quantize(c.scheme))
        return passes

    if not linear_ok and (options.energy is not None or options.dims not in ("auto", None)):
        raise EdgerecError(f"--dims/--energy rotate the embedding space, which a {reference.history_kind} "
                           f"encoder with a {reference.scorer['kind']} scorer (or with channel pruning) does "
                           "not allow; use --dims full (edgerec.passes.prune_channels prunes such models)")
    space = _space(reference, options, linear_ok, log)
    rows: list[dict[str, Any]] = []
    # the margin decides what the compiler chooses; a configuration the user gave is held to the
    # measured drop, as before, with the bound recorded beside it
    searched = len(space.schemes) * len(space.widths) * len(space.distill) > 1
    if not searched:
        chosen = Candidate(space.schemes[0], space.widths[0], space.distill[0])
    else:
        chosen, rows = _run_search(reference, space, narrowing, gdata, ref_metrics, options, log)
    reports[-1] = dataclasses.replace(reports[-1], metrics_after=ref_metrics)
    passes = [*_channel_passes(options), *narrowing(chosen),
              Guard(reference, gdata, max_recall_drop=options.max_recall_drop,
                    min_agreement=options.min_agreement, force=options.force,
                    reference_metrics=ref_metrics, use_bound=searched)]
    run = PassManager(passes, measure=lambda x: measure(x, reference, gdata)).run(ir, ref_metrics)
    ir = run.ir
    reports += run.reports
    if rows:
        ir = ir.replace(metrics={**ir.metrics, "search": record(rows, ref_metrics, options.ranked_by)})
    return CompileResult(ir, reports, rows, reference)


def history_falls_short(ir: IR, metrics: dict[str, float], data: GuardData | None = None,
                        k: int = 20) -> bool:
    """Whether the float model's history mode keeps less than :data:`HISTORY_SHARE` of its lookup
    Recall@k, in a model whose history tables :class:`DistillHistory` can train. With ``data``,
    only a shortfall the validation users are sure of counts: the 5th percentile of a paired
    bootstrap of history's drop relative to lookup must exceed the allowance too (a small or
    barely trained model's noise does not trigger a fine-tune)."""
    lookup, history = metrics.get(f"lookup/recall@{k}"), metrics.get(f"history/recall@{k}")
    short = (lookup is not None and history is not None and history < HISTORY_SHARE * lookup
             and ir.history_kind == "lightgcn" and ir.scorer.get("kind") == "dot"
             and "user_base" in ir.tables)
    if not short or data is None:
        return short
    users = users_with_items(data.truth)
    _, low = paired_drop_bound(data.reference_recall(ir, users, "history", k),
                               data.reference_recall(ir, users, "lookup", k), 0.05, seed=data.seed)
    return low > 1 - HISTORY_SHARE


def _fix_history(reference: IR, ref_metrics: dict[str, float], gdata: GuardData,
                 log: Callable[[str], None]) -> tuple[IR, dict[str, float], PassReport]:
    """Train the history tables toward lookup mode; the result becomes the float reference the
    guard holds the compiled model to (lookup is unchanged, history better)."""
    log(f"history mode keeps {ref_metrics['history/recall@20'] / ref_metrics['lookup/recall@20']:.1%} of "
        f"lookup's Recall@20 (< {HISTORY_SHARE:.0%}): training the history tables toward lookup")
    run = PassManager([DistillHistory(log=log)], measure=lambda x: measure(x, x, gdata)).run(
        reference, ref_metrics)
    fixed = run.metrics
    log(f"history Recall@20 {ref_metrics['history/recall@20']:.4f} -> {fixed['history/recall@20']:.4f} "
        f"(lookup {fixed['lookup/recall@20']:.4f})")
    if fixed["history/recall@20"] <= ref_metrics["history/recall@20"]:
        return reference, ref_metrics, dataclasses.replace(
            run.reports[-1], notes=[*run.reports[-1].notes, "no gain on the valid split: input kept"])
    return run.ir, fixed, run.reports[-1]


def _space(reference: IR, options: CompileOptions, linear_ok: bool,
           log: Callable[[str], None]) -> Space:
    """What the search varies: every option left to ``auto``, within what the model allows."""
    widths: tuple[int | None, ...]
    if not linear_ok or options.dims is None:
        widths = (None,)
    elif options.energy is not None:
        widths = (energy_dims(reference, options.energy),)
        log(f"--energy {options.energy}: {widths[0]} dims")
    elif options.dims == "auto":
        widths = tuple(None if w == reference.dim else w for w in _candidate_widths(reference.dim))
    else:
        widths = (int(options.dims),)
    if options.quantize != "auto":
        schemes: tuple[str, ...] = (options.quantize,)
    elif reference.scorer.get("kind") == "mlp" or _channel_passes(options):
        schemes = ("int8",)  # the 4-bit formats pack a dot scorer's tables of the model as lowered
    else:
        schemes = AUTO_FORMATS
    narrowed = any(w is not None for w in widths)
    if options.distill_epochs is None:
        # distillation trains a LightGCN model's tables (from_embeddings tables are refused)
        auto = (narrowed and reference.history_kind == "lightgcn" and len(widths) > 1
                and reference.provenance.get("source") != "from_embeddings")
        distill: tuple[bool, ...] = (False, True) if auto else (False,)
    else:
        distill = (options.distill_epochs > 0,)
    return Space(schemes, widths, distill)


def _run_search(reference: IR, space: Space, narrowing: Callable[[Candidate], list[Pass]],
                gdata: GuardData, ref_metrics: dict[str, float], options: CompileOptions,
                log: Callable[[str], None]) -> tuple[Candidate, list[dict[str, Any]]]:
    """Run :func:`edgerec.search.search`; the chosen candidate and the table of what was tried."""
    def build(c: Candidate) -> IR:
        return PassManager(narrowing(c)).run(reference).ir

    def evaluate(c: Candidate) -> tuple[IR, dict[str, float], bool]:
        compiled = build(c)
        m = measure(compiled, reference, gdata)
        return compiled, m, not check(m, ref_metrics, reference.modes, options.max_recall_drop,
                                      options.min_agreement)

    sizes: dict[tuple[str, int | None], int] = {}

    def table_bytes(c: Candidate) -> int:
        if (c.scheme, c.width) not in sizes:
            sizes[c.scheme, c.width] = build(Candidate(c.scheme, c.width, False)).nbytes
        return sizes[c.scheme, c.width]

    size = options.file_bytes or (lambda compiled: compiled.nbytes)
    outcome = search(space, evaluate, size, table_bytes, budget=60 * options.search_budget, log=log,
                     progress=options.progress)
    if outcome.chosen is None:
        if not options.force:
            raise GuardError(f"accuracy guard refused every candidate ({len(outcome.rows)} tried, "
                             f"the widest {space.widths[-1] or reference.dim} dims in "
                             f"{public_format(space.schemes[0])}): each loses more than "
                             f"{100 * options.max_recall_drop:.1f}% Recall@20 (use --quantize float32 "
                             "or --force)")
        return Candidate(space.schemes[0], None, False), outcome.rows
    c = outcome.chosen
    chosen = next(r for r in outcome.rows if r["chosen"])
    log(f"search chose {public_format(c.scheme)}, {chosen['dims']} dims"
        f"{', distilled' if chosen['distilled'] else ''}: {chosen['file_bytes']} bytes "
        f"({options.ranked_by}), the smallest of {len(outcome.rows)} candidates tried within the guard")
    return c, outcome.rows


def _distill_pass(reference: IR, options: CompileOptions, scheme: str,
                  log: Callable[[str], None]) -> Distill:
    """Fine-tune the pruned tables to rank like the float model (docs/compression.md), aware of
    the rounding that follows when every table is quantized alike (int8, int4; int4-item mixes
    widths, which the fake quantizer does not model; int4-pq is trained with int4 rounding
    throughout, the item table's, which the product codes of the gathered tables come near). lr and temperature are the values
    measured best in ``experiments/compression_report.py``."""
    epochs = AUTO_DISTILL_EPOCHS if options.distill_epochs is None else options.distill_epochs
    return Distill(reference, epochs=epochs, lr=3e-3, temperature=0.5,
                   sample_users=options.distill_users,
                   quant_bits=DISTILL_BITS.get(scheme), log=log)


def _check_program_options(model: str, head: str, options: CompileOptions) -> None:
    """Options that only some models have are refused up front, by name, instead of failing
    later with another pass's explanation or being silently ignored."""
    if options.channel_keep is not None:
        if model in ("lightgcn", "embeddings"):
            raise EdgerecError("--channel-keep prunes a sage/gcn/gat encoder's output channels; "
                               "a LightGCN model is narrowed with --dims or --energy")
        if options.energy is not None or options.dims not in ("auto", None):
            raise EdgerecError("give either --channel-keep or --dims/--energy, not both")
    if head != "mlp" and (options.head_keep is not None or options.finetune_epochs > 0):
        raise EdgerecError("--head-keep and --finetune-epochs act on an MLP head; this model scores "
                           "with a dot product")
    if model in ("lightgcn", "embeddings") and options.new_user != "mean":
        raise EdgerecError("--new-user chooses a sage/gcn model's base vector for a new user; "
                           "LightGCN's history mode has none")


def _channel_passes(options: CompileOptions) -> list[Pass]:
    """The structured channel-pruning passes the options ask for, in order."""
    passes: list[Pass] = []
    if options.channel_keep is not None:
        passes.append(PruneEncoderChannels(options.channel_keep))
    if options.head_keep is not None:
        passes.append(PruneHead(options.head_keep, options.head_importance))
    if options.finetune_epochs > 0:
        passes.append(FinetuneHead(options.finetune_epochs))
    return passes


def dims_prunable(ir: IR) -> bool:
    """Whether the svd/columns width pruning keeps the IR's programs exact: a dot scorer, and a
    history program that is linear in its user-side tables (not gat's attention logits)."""
    return ir.scorer.get("kind") == "dot" and ir.history_kind in ("lightgcn", "sage", "gcn")


def _remap_truth(truth: tuple[np.ndarray, np.ndarray], old_ids: list[str],
                 new_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pos = {i: n for n, i in enumerate(new_ids)}
    remap = np.array([pos.get(i, -1) for i in old_ids], np.int64)
    indptr, indices = truth
    new = remap[indices]
    keep = new >= 0
    counts = np.array([keep[indptr[u]:indptr[u + 1]].sum() for u in range(indptr.size - 1)], np.int64)
    out = np.zeros_like(indptr)
    np.cumsum(counts, out=out[1:])
    return out, new[keep].astype(np.int32)
