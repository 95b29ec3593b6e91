r"""edgerec's public Python API: train or import a model, compile it, export it.

.. code-block:: python

    import edgerec
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)   # your PyG LightGCN
    compiled = edgerec.compile(ckpt)                                        # prune, quantize, guard
    edgerec.export(compiled, "art", target="tflite")                        # verified model file

The CLI (``edgerec ...``) is a thin layer over these functions. Heavy toolkits (torch, PyG,
tensorflow, onnx) are imported inside the functions that need them, so ``import edgerec`` is
cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerec.errors import EdgerecError, ExportError
from edgerec.schemes import FORMATS, scheme_of

if TYPE_CHECKING:
    import numpy as np

    from edgerec.checkpoint import Checkpoint
    from edgerec.data import Interactions
    from edgerec.ir import IR, PassReport
    from edgerec.lowering.embeddings import Embeddings

PathLike = str | os.PathLike[str]
Log = Callable[[str], None]
TARGETS = ("tflite", "onnx", "numpy")
NO_TEST_SPLIT = ("with_eval / --with-eval needs held-out test interactions; this checkpoint has "
                 "none (give --data DIR with a test split)")


def _silent(_message: str) -> None:
    pass


@dataclass
class Compiled:
    """A compiled model: the IR, the report of every pass that built it, and its source.

    Args:
        ir (IR): the compiled intermediate representation (tables, scorer, id maps).
        reports (list[PassReport]): one report per pass, in order (bytes and metrics before and
            after).
        search (list[dict]): the candidates the search (``quantize="auto"``, ``dims="auto"``)
            measured, in the order tried: format, width, distillation, file bytes, guard
            metrics, and the seconds each took (which the IR's record leaves out).
        checkpoint (Checkpoint, optional): the checkpoint compiled, kept so that
            :func:`export` can add the held-out evaluation sample (``with_eval=True``).
        data (Interactions, optional): the interactions whose valid split fed the guard, when
            they are not the checkpoint's own.
        reference (IR, optional): the float model the guard held :attr:`ir` to (with history
            tables trained toward lookup when the compile fixed history mode), kept so that
            the evaluation sample's reference answers are that model's.
    """

    ir: IR
    reports: list[PassReport] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    data: Interactions | None = None
    reference: IR | None = None

    def save(self, path: PathLike, *, overwrite: bool = False) -> Path:
        """Write the IR directory (``ir.json`` + ``.npy`` tables) to ``path``."""
        from edgerec.atomic_dir import check_replaceable
        from edgerec.errors import IRError
        from edgerec.ir import save_ir

        path = Path(path)
        if path.exists() and not overwrite:
            raise IRError(f"{path} exists (use overwrite=True / --overwrite to replace it)")
        check_replaceable(path, self._sources())
        return save_ir(self.ir, path, overwrite=overwrite)

    def _sources(self) -> tuple[Path, ...]:
        return (self.checkpoint.path,) if self.checkpoint is not None else ()


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Load and verify a checkpoint directory (``edgerec train`` or ``edgerec import``).

    Args:
        path (str or PathLike): the checkpoint directory.
    """
    from edgerec.checkpoint import load_checkpoint as _load

    return _load(path)


def load_data(path: PathLike, *, split: str = "time") -> Interactions:
    """Read interactions: a LightGCN folder (``train.txt``/``valid.txt``/``test.txt``) or a
    CSV/TSV of ``user,item[,timestamp]``.

    Args:
        path (str or PathLike): the folder or file.
        split (str, optional): for a CSV file, how valid/test are held out: ``"time"`` (the last
            interactions of each user, needs timestamps) or ``"random"``. (default: ``"time"``)
    """
    from edgerec.data import load_data as _load

    path = Path(path)
    return _load(path, split=split) if path.is_file() else _load(path)


def synthesize(out: PathLike, *, users: int = 1000, items: int = 2000, communities: int | None = None,
               seed: int = 0, dense: bool = False) -> Path:
    """Write a SYNTHETIC dataset in LightGCN text format (``train.txt``/``valid.txt``/
    ``test.txt``): users drawn from ``communities`` taste groups over Zipf-popular items, split
    per user. No download; not real data.

    Args:
        out (PathLike): the folder to write (must not exist, or be empty).
        users (int, optional): number of users. (default: ``1000``)
        items (int, optional): number of items. (default: ``2000``)
        communities (int, optional): taste groups. (default: ``12``; ``40`` when ``dense``)
        seed (int, optional): the generator's seed. (default: ``0``)
        dense (bool, optional): long histories (a median of ~60 training items per user, see
            :data:`edgerec.synthetic.DENSE`). (default: :obj:`False`)
    """
    from edgerec.synthetic import DENSE, write_synthetic

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgerecError(f"{out} exists and is not empty")
    options: dict[str, Any] = {**(DENSE if dense else {"communities": 12}),
                               **({} if communities is None else {"communities": communities})}
    return write_synthetic(out, num_users=users, num_items=items, seed=seed, **options)


def train(data: Interactions | PathLike, *, out: PathLike | None = None, model: str = "lightgcn",
          head: str = "dot", features: np.ndarray | PathLike | None = None, split: str = "time",
          progress: Callable[[dict[str, float]], None] | None = None, overwrite: bool = False,
          **hyperparameters: Any) -> Checkpoint:
    r"""Train a reference recommender with BPR, early-stopping on valid NDCG@20.

    The loss for a user :math:`u`, a training item :math:`i` and a sampled item :math:`j` is
    :math:`-\log\sigma(s(u,i) - s(u,j)) + \lambda \lVert \mathbf{e}^{(0)} \rVert^2`.

    Args:
        data (Interactions or PathLike): the interactions, or a path :func:`load_data` reads.
        out (PathLike, optional): write the checkpoint there. (default: :obj:`None`, in memory)
        model (str, optional): ``"lightgcn"``, ``"sage"``, ``"gcn"`` or ``"gat"``.
            (default: ``"lightgcn"``)
        head (str, optional): sage/gcn/gat: ``"dot"`` or ``"mlp"``. (default: ``"dot"``)
        features (np.ndarray or PathLike, optional): sage/gcn/gat: fixed node features
            ``[U + I, F]`` appended to the learned input embeddings, or a CSV
            ``kind,id,f1,...`` (``kind`` user or item) to read them from. (default: :obj:`None`)
        split (str, optional): how a CSV path is split, see :func:`load_data`.
            (default: ``"time"``)
        progress (callable, optional): called after every epoch with the loss (and the valid
            metrics on evaluation epochs). (default: :obj:`None`)
        overwrite (bool, optional): replace an earlier edgerec output at ``out``.
            (default: :obj:`False`)
        **hyperparameters: fields of :class:`edgerec.trainer.TrainConfig` (``dim``, ``layers``,
            ``epochs``, ``batch_size``, ``lr``, ``reg``, ``seed``, ``eval_every``, ``patience``,
            ``max_minutes``, ``threads``, ``hidden``).
    """
    from edgerec.checkpoint import in_memory_checkpoint, save_checkpoint
    from edgerec.errors import TrainConfigError
    from edgerec.trainer import TrainConfig, evaluate_checkpoint_model
    from edgerec.trainer import train as run_train

    if out is not None:  # before training, not after
        check_output(Path(out), overwrite, tuple(Path(p) for p in (data, features)
                                                 if isinstance(p, str | os.PathLike)))
    interactions = load_data(data, split=split) if isinstance(data, str | os.PathLike) else data
    if model == "lightgcn" and (head != "dot" or features is not None):
        raise TrainConfigError("head='mlp' and features need model 'sage', 'gat' or 'gcn'")
    if isinstance(features, str | os.PathLike):
        from edgerec.gnn import load_features

        features = load_features(Path(features), interactions.user_ids, interactions.item_ids)
    try:
        config = TrainConfig(model=model, head=head, **hyperparameters)
    except TypeError as e:
        raise TrainConfigError(str(e)) from None
    result = run_train(interactions, config, progress, features=features)
    conf = result.checkpoint_config()
    if len(interactions.test):
        conf["metrics"]["test"] = evaluate_checkpoint_model(result.model, interactions, "test")
    if out is not None:
        save_checkpoint(out, result.model, interactions, conf, overwrite=overwrite)
        return load_checkpoint(out)
    return in_memory_checkpoint(result.model, interactions, conf)


def evaluate(checkpoint: Checkpoint | PathLike, *, split: str = "test",
             ks: Sequence[int] = (10, 20, 40),
             data: Interactions | PathLike | None = None) -> dict[str, float]:
    r"""Full-ranking Recall@K and NDCG@K of the checkpoint's float model on a held-out split,
    each user's training items excluded (the protocol of the published LightGCN figures):
    :math:`	ext{Recall@K} = |	ext{top}_K(u) \cap T_u| / \min(K, |T_u|)`, averaged over users.

    Args:
        checkpoint (Checkpoint or PathLike): the model.
        split (str, optional): ``"valid"`` or ``"test"``. (default: ``"test"``)
        ks (sequence of int, optional): the cut-offs. (default: ``(10, 20, 40)``)
        data (Interactions or PathLike, optional): evaluate on this data instead of the
            checkpoint's splits; same users and items. (default: :obj:`None`)
    """
    from edgerec.errors import DataError
    from edgerec.trainer import evaluate_checkpoint_model

    ckpt = checkpoint if not isinstance(checkpoint, str | os.PathLike) else load_checkpoint(checkpoint)
    interactions = load_data(data) if isinstance(data, str | os.PathLike) else data
    if interactions is None:
        interactions = ckpt.data
    elif (interactions.num_users, interactions.num_items) != (ckpt.data.num_users, ckpt.data.num_items):
        raise DataError(f"{interactions.source}: {interactions.num_users} users / "
                        f"{interactions.num_items} items do not match the checkpoint's "
                        f"{ckpt.data.num_users} / {ckpt.data.num_items}")
    if split not in ("valid", "test"):
        raise DataError(f"split must be 'valid' or 'test', not {split!r}")
    if data is None and len(interactions.split(split)) == 0:
        raise DataError(f"this checkpoint holds no held-out {split} interactions (one imported "
                        "without them?): give them with --data DIR / data=...")
    return evaluate_checkpoint_model(ckpt.model, interactions, split, tuple(sorted(ks)))


def compile(source: Checkpoint | Embeddings | PathLike, *, modes: Sequence[str] = ("lookup", "history"),
            dims: int | str | None = "auto", energy: float | None = None,
            prune_method: str = "svd", quantize: str = "auto",
            data: Interactions | PathLike | None = None, max_recall_drop: float = 0.02,
            recall_margin: float | None = 0.95,
            min_agreement: float | None = None, force: bool = False, min_item_count: int = 0,
            distill_epochs: int | None = None, head_keep: float | int | None = None,
            channel_keep: float | int | None = None, finetune_epochs: int = 0,
            new_user: str = "mean", history_fix: bool = True, search_budget: float = 10.0,
            size_target: str | Callable[[IR], int] = "tflite", progress: bool = False,
            log: Log | None = None) -> Compiled:
    r"""Compile a checkpoint into an IR: precompute, prune, quantize, and the accuracy guard.

    By default (``quantize="auto"``, ``dims="auto"``) the number format, the width and whether
    to distil are searched together (:mod:`edgerec.search`): the smallest exported file the
    guard accepts in every mode, ranked by ``size_target``'s model bytes. The search is in the
    IR's ``metrics["search"]`` (and so in the manifest) and in :attr:`Compiled.search`.

    The guard compares the compiled model with the float model on the valid split, per mode:
    it refuses when Recall@20 drops by more than ``max_recall_drop`` (relative), i.e. it accepts
    :math:`R_{\text{compiled}} \ge (1 - \text{max\_recall\_drop})\, R_{\text{float}}`.

    Args:
        source (Checkpoint, Embeddings or PathLike): a checkpoint (from :func:`train`,
            :func:`from_pyg` or :func:`load_checkpoint`), final tables from
            :func:`from_embeddings` (compiled in row blocks: tables larger than RAM stay
            mapped), or the path of a checkpoint directory. An IR directory is loaded as it was
            compiled (then every other argument must keep its default).
        modes (sequence of str, optional): serving modes, a subset of ``("lookup",
            "history")``. (default: both; for :func:`from_embeddings` tables, the modes they
            allow)
        dims (int, str or None, optional): the width after pruning: a number, ``"auto"`` (the
            smallest width the guard accepts), or :obj:`None` to keep the full width.
            (default: ``"auto"``)
        energy (float, optional): instead of ``dims``, keep this fraction of the score
            matrix's spectral energy. (default: :obj:`None`)
        prune_method (str, optional): ``"svd"`` (rotate, then truncate) or ``"columns"``.
            (default: ``"svd"``)
        quantize (str, optional): the number format: ``"auto"`` (searched among ``"int8"``,
            ``"int4-item"``, ``"int4"`` and ``"int4-pq"``), ``"float32"``, ``"float16"``,
            ``"int8"``, ``"int4-item"`` (the item table in 4 bits), ``"int4"`` or ``"int4-pq"``
            (the item table in 4 bits, user and history rows in product codes of 3 bits a
            value). (default: ``"auto"``)
        data (Interactions or PathLike, optional): guard on this data's valid split.
            (default: the checkpoint's)
        max_recall_drop (float, optional): the guard's budget, in ``[0, 1]``.
            (default: ``0.02``)
        recall_margin (float, optional): hold this quantile of a paired bootstrap over the
            validation users of the drop (not only the measured drop) to ``max_recall_drop``,
            so the promise carries a margin for users the guard has not seen; :obj:`None` or
            ``0``: the point estimate only. (default: ``0.95``)
        min_agreement (float, optional): also require this top-20 agreement with the float
            model. (default: :obj:`None`)
        force (bool, optional): keep the result even if the guard objects.
            (default: :obj:`False`)
        min_item_count (int, optional): drop items with fewer training interactions.
            (default: ``0``)
        distill_epochs (int, optional): LightGCN: distil the pruned tables against the float
            model's rankings for this many epochs; :obj:`None`: the search tries it where it
            can pay (when something else is searched), else ``0``. (default: :obj:`None`)
        head_keep (float or int, optional): MLP head: fraction (or number) of hidden neurons
            kept. (default: :obj:`None`)
        channel_keep (float or int, optional): sage/gcn/gat: fraction (or number) of encoder
            output channels kept. (default: :obj:`None`)
        finetune_epochs (int, optional): MLP head: BPR epochs on the pruned head.
            (default: ``0``)
        new_user (str, optional): sage/gcn history mode: a new user's base vector, ``"mean"``
            or ``"bias"``. (default: ``"mean"``)
        history_fix (bool, optional): LightGCN history mode: when the float model's history
            mode keeps less than 97% of lookup's Recall@20 on the valid split (and a bootstrap
            over the users is sure of it), first train the history tables toward lookup mode;
            that model is then the float reference in history mode. (default: :obj:`True`)
        search_budget (float, optional): minutes for the search; it keeps its best candidate
            when they run out. (default: ``10``)
        size_target (str or callable, optional): what the search ranks by: a target's model
            file bytes (``"tflite"``, ``"onnx"``, ``"numpy"``, or ``"all"``: the larger of the
            TFLite and ONNX files), or a function ``IR -> bytes``. (default: ``"tflite"``)
        progress (bool, optional): show the search's progress bar on stderr.
            (default: :obj:`False`)
        log (callable, optional): receives one line per step. (default: silent)
    """
    from edgerec.checkpoint import Checkpoint
    from edgerec.lowering.embeddings import Embeddings
    from edgerec.pipeline import CompileOptions, compile_checkpoint, compile_embeddings

    if quantize not in (*FORMATS, "auto"):
        raise EdgerecError(f"unknown number format {quantize!r}; choose auto or one of {', '.join(FORMATS)}")
    if not search_budget > 0:
        raise EdgerecError(f"search_budget must be a positive number of minutes, not {search_budget!r}")
    file_bytes = size_target if callable(size_target) else _sizer(size_target)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if (path / "ir.json").is_file():
            return _load_ir_source(path, locals())
        if not path.exists():
            raise EdgerecError(f"{path}: no such checkpoint or IR directory")
        source = load_checkpoint(path)
    if not isinstance(source, Checkpoint | Embeddings):
        raise EdgerecError("compile() takes a Checkpoint, what from_embeddings returns, or a path, "
                           f"not {type(source).__name__}")
    width = source.dim if isinstance(source, Embeddings) else int(source.config["dim"])
    if isinstance(dims, str) and dims != "auto":
        raise EdgerecError(f"dims must be a number, 'auto' or None, not {dims!r}")
    if isinstance(dims, int) and not 1 <= dims <= width:
        raise EdgerecError(f"dims must be between 1 and {width}, not {dims}")
    if isinstance(source, Embeddings):
        if data is not None:
            raise EdgerecError("data applies to a checkpoint; give from_embeddings its "
                               "interactions and valid pairs instead")
        if tuple(modes) == _COMPILE_DEFAULTS["modes"]:
            modes = source.modes
        elif not set(modes) <= set(source.modes):
            raise EdgerecError("history mode needs from_embeddings(history_item=...)")
    if recall_margin is not None and not 0 <= recall_margin < 1:
        raise EdgerecError(f"recall_margin must be a quantile in [0, 1) (0: none), not {recall_margin}")
    interactions = load_data(data) if isinstance(data, str | os.PathLike) else data
    options = CompileOptions(
        modes=tuple(modes), dims=None if energy is not None and dims == "auto" else dims,
        energy=energy, method=prune_method, quantize="auto" if quantize == "auto" else scheme_of(quantize),
        max_recall_drop=max_recall_drop, recall_margin=recall_margin or None,
        min_agreement=min_agreement, force=force,
        min_item_count=min_item_count, head_keep=head_keep, channel_keep=channel_keep,
        finetune_epochs=finetune_epochs, new_user=new_user, distill_epochs=distill_epochs,
        history_fix=history_fix, search_budget=search_budget, progress=progress, file_bytes=file_bytes,
        ranked_by=getattr(file_bytes, "ranked_by", "file bytes"))
    if isinstance(source, Embeddings):
        result = compile_embeddings(source, options, log or _silent)
        return Compiled(result.ir, result.reports, result.search)
    result = compile_checkpoint(source, options, interactions, log or _silent)
    return Compiled(result.ir, result.reports, result.search, source, interactions, result.reference)


# what compile() would change about a model, with its defaults (an IR source must keep them);
# read from the signature so the two cannot drift
_COMPILE_DEFAULTS = {n: p.default for n, p in signature(compile).parameters.items()
                     if p.kind is p.KEYWORD_ONLY and n not in ("log", "progress", "size_target")}


def _sizer(target: str, k: int = 50, history_capacity: int = 50) -> Callable[[IR], int]:
    """The search's size function: ``target``'s model bytes (``all``: the larger of TFLite and
    ONNX, so that one IR serves both), named in its ``ranked_by``."""
    if target not in (*TARGETS, "all"):
        raise EdgerecError(f"unknown size target {target!r}; choose from {', '.join(TARGETS)} or 'all'")
    targets = ("tflite", "onnx") if target == "all" else (target,)

    def size(ir: IR) -> int:
        from exporters.size import model_bytes

        return model_bytes(ir, targets, k=k, history_capacity=history_capacity)

    size.ranked_by = (  # type: ignore[attr-defined]
        f"{'the larger of the tflite and onnx' if target == 'all' else target} model bytes")
    return size


def _load_ir_source(path: Path, given: dict[str, Any]) -> Compiled:
    """An IR directory is already compiled: an option that would change it is an error, not
    silently ignored."""
    from edgerec.ir import load_ir

    changed = [n for n, default in _COMPILE_DEFAULTS.items()
               if given[n] != default and not (n == "modes" and tuple(given[n]) == default)]
    if changed:
        raise EdgerecError(f"{path} is an IR, exported as it was compiled; {', '.join(changed)} "
                           "apply when compiling a checkpoint")
    return Compiled(load_ir(path))


def export(compiled: Compiled | IR | Checkpoint | Embeddings | PathLike, out: PathLike, *,
           target: str = "tflite", k: int = 50, history_capacity: int = 50,
           with_eval: bool = False, eval_users: int = 500, overwrite: bool = False,
           log: Log | None = None, **compile_options: Any) -> Path:
    """Write a verified on-device artifact: each model file is run in its own interpreter and
    compared with the numpy reference before anything is written.

    Args:
        compiled (Compiled, IR, Checkpoint, Embeddings or PathLike): what to export; a
            checkpoint (or its path) or :func:`from_embeddings` tables are compiled first with
            ``compile_options`` (see :func:`compile`).
        out (PathLike): the artifact directory; with ``target="all"``, ``out/tflite`` and
            ``out/onnx``.
        target (str, optional): ``"tflite"``, ``"onnx"``, ``"numpy"`` (the reference backend's
            format) or ``"all"`` (tflite and onnx). (default: ``"tflite"``)
        k (int, optional): top-k the model returns. (default: ``50``)
        history_capacity (int, optional): most recent history items the history signature
            reads. (default: ``50``)
        with_eval (bool, optional): add ``eval.json`` (held-out users and the float model's
            answers) for on-device accuracy; needs a checkpoint source. (default: :obj:`False`)
        eval_users (int, optional): users in that sample. (default: ``500``)
        overwrite (bool, optional): replace an earlier edgerec output at ``out``.
            (default: :obj:`False`)
        log (callable, optional): receives one line per target written. (default: silent)
        **compile_options: passed to :func:`compile` when ``compiled`` is not compiled yet.

    Returns:
        Path: ``out``.
    """
    from edgerec.atomic_dir import atomic_directory
    from edgerec.checkpoint import Checkpoint
    from edgerec.ir import IR
    from exporters import export_ir

    out = Path(out)
    log = log or _silent
    targets = ["tflite", "onnx"] if target == "all" else [target]
    if target not in (*TARGETS, "all"):
        raise ExportError(f"unknown target {target!r}; choose from {', '.join(TARGETS)} or 'all'")
    sources = (Path(compiled),) if isinstance(compiled, str | os.PathLike) else ()
    if isinstance(compiled, Checkpoint):
        sources = (compiled.path,)
    check_output(out, overwrite, (*sources, *_data_paths(compile_options)))
    if (with_eval and isinstance(compiled, Checkpoint) and compile_options.get("data") is None
            and len(compiled.data.test) == 0):  # before the compile, not after
        raise ExportError(NO_TEST_SPLIT)
    if isinstance(compiled, IR):
        compiled = Compiled(compiled)
    if not isinstance(compiled, Compiled):
        compiled = compile(compiled, log=log, **{
            "size_target": _sizer(target, k, history_capacity), **compile_options})
    elif compile_options:
        raise EdgerecError(f"{', '.join(compile_options)}: the model is already compiled")
    ir = compiled.ir
    extra: dict[str, bytes] = {}
    if with_eval:
        extra["eval.json"] = eval_sample(compiled, users=eval_users, history_capacity=history_capacity)
    four = [n for n in ir.serving_tables() if ir.tables[n].bits == 4]
    note = (None if not four else "the item table keeps its" if four == ["item"]
            else "the tables keep their")
    with atomic_directory(out) as tmp:
        for t in targets:  # one target: the artifact is ``out`` itself (the empty tmp is replaced)
            dest = tmp if len(targets) == 1 else tmp / t
            export_ir(ir, dest, t, k=k, history_capacity=history_capacity, extra_files=extra,
                      metrics=ir.metrics, overwrite=True)
            log(f"{t}: " + ("written (the reference format itself)" if t == "numpy"
                            else "verified against the numpy reference"))
            if note and t == "numpy":
                log(f"{t}: note: {note} 4-bit values in int8 storage "
                    "(the TFLite and ONNX files pack them two a byte)")
    return out


def eval_sample(compiled: Compiled, *, users: int = 500, history_capacity: int = 50) -> bytes:
    """The held-out users that travel with an artifact (``eval.json``): their history as a
    device holds it, their test items, and the float model's answers in both modes.

    Args:
        compiled (Compiled): a model compiled from a checkpoint (it holds the held-out split).
        users (int, optional): how many test users to sample. (default: ``500``)
        history_capacity (int, optional): the device's history length. (default: ``50``)
    """
    from device_bench.evalfile import encode_eval
    from edgerec.evalset import eval_records
    from edgerec.lowering.lightgcn import precompute

    ckpt = compiled.checkpoint
    if ckpt is None:
        raise ExportError("with_eval / --with-eval needs a checkpoint as the source "
                          "(it holds the held-out interactions)")
    data = compiled.data if compiled.data is not None else ckpt.data
    if len(data.test) == 0:
        raise ExportError(NO_TEST_SPLIT)
    ir = compiled.ir
    # the float model the guard compared with: with history tables trained toward lookup when the
    # compile fixed history mode, so that on-device agreement measures the compile, not the fix
    float_ir = compiled.reference if compiled.reference is not None else precompute(ckpt)[0]
    recs = eval_records(float_ir, data, users=users, history_capacity=history_capacity)
    if len(set(ir.item_ids)) != len(float_ir.item_ids):  # cold items dropped: keep known ids only
        known = set(ir.item_ids)
        for r in recs:
            r["history"] = [i for i in r["history"] if i in known]
            r["reference"] = {m: [i for i in v if i in known] for m, v in r["reference"].items()}
        recs = [r for r in recs if r["history"]]
    return encode_eval(recs, k=20, item_ids=ir.item_ids, user_ids=ir.user_ids,
                       source={"checkpoint": ckpt.fingerprint, "data": data.source, "split": "test",
                               "synthetic": data.synthetic})


def inspect(path: PathLike) -> dict[str, Any]:
    """What is at ``path``: an IR, an artifact (verified as a device loads it, checksums
    included), an ``export --target all`` directory of artifacts, or a checkpoint.

    Args:
        path (str or PathLike): the directory.

    Returns:
        dict: ``{"kind": "ir", "summary": ...}``, ``{"kind": "artifact", "manifest": ...,
        "file_bytes": {file: bytes}}``, ``{"kind": "artifacts", "artifacts": {target: ...}}`` or
        ``{"kind": "checkpoint", "config": ...}``.
    """
    from edgerec.atomic_dir import artifact_children

    root = Path(path)
    if (root / "ir.json").is_file():
        from edgerec.ir import describe, load_ir

        return {"kind": "ir", "summary": describe(load_ir(root))}
    if (root / "manifest.json").is_file():
        return _artifact_summary(root)
    if kids := artifact_children(root):
        return {"kind": "artifacts", "artifacts": {c.name: _artifact_summary(c) for c in kids}}
    if (root / "config.json").is_file():
        c = load_checkpoint(root).config
        return {"kind": "checkpoint", "config": {k: c[k] for k in (
            "model", "num_users", "num_items", "dim", "layers", "train", "metrics", "data") if k in c}}
    raise EdgerecError(f"{root}: not an IR, artifact or checkpoint directory")


def _artifact_summary(root: Path) -> dict[str, Any]:
    from runtime.artifact import load_artifact

    manifest = load_artifact(root).manifest
    return {"kind": "artifact", "manifest": manifest,
            "file_bytes": {f: (root / f).stat().st_size for f in sorted(manifest["files"])}}


def _data_paths(options: dict[str, Any]) -> tuple[Path, ...]:
    d = options.get("data")
    return (Path(d),) if isinstance(d, str | os.PathLike) else ()


def check_output(out: Path, overwrite: bool, sources: tuple[Path, ...]) -> None:
    """Refuse before any work: an existing output without ``overwrite``, or one that is not an
    earlier edgerec output, or one of the command's own inputs."""
    from edgerec.atomic_dir import check_replaceable

    if (out.exists() or out.is_symlink()) and not overwrite:
        raise EdgerecError(f"{out} exists (use overwrite=True / --overwrite to replace it)")
    check_replaceable(out, sources)
