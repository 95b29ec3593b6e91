"""The TFLite signature-runner backend shared by LiteRT and the legacy tflite_runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.artifact import Artifact, check_model_io
from runtime.backends import _model_check, _repacked
from runtime.errors import ArtifactError


class TFLiteBackend:
    """One interpreter on ``model.tflite`` (memory-mapped by ``model_path``), one runner per mode.

    A TFLite interpreter is not safe to invoke from two threads, so ``thread_safe`` is False
    and the recommender keeps one instance per thread. By default the interpreter runs with its
    default XNNPACK delegate (about 3x faster on the int8 hybrid kernels, measured in
    docs/benchmarks-log.md); the exporter's parity check measures that path too
    (``metrics.parity.default_delegates``). ``exact=True`` uses the builtin kernels only, whose
    arithmetic ``quantization.activations`` describes bit for bit (XNNPACK rounds the
    dynamically quantized user vector differently, so a near-tie in the top-k can swap).
    With XNNPACK, the file's pages of the weights it has repacked are given back after load
    (``released_bytes``; see ``runtime/backends/_repacked.py``).
    """

    thread_safe = False

    def __init__(self, name: str, interpreter_cls: Any, resolver: Any, artifact: Artifact,
                 num_threads: int | None, repacks: bool = False) -> None:
        self.name = name
        m = artifact.manifest
        files = {m["signatures"][mode]["file"] for mode in m["modes"]}
        if len(files) != 1:
            raise ArtifactError(f"{artifact.root}: a tflite artifact has one model file, got {sorted(files)}")
        path = artifact.path(files.pop())
        _model_check.check_tflite(m, path)  # before the interpreter: the manifest must be true
        repacks = repacks and bool(_repacked.fully_connected_weights(path))
        before = _repacked.file_mappings(path) if repacks else set()
        try:
            self._interp = interpreter_cls(model_path=str(path), num_threads=num_threads,
                                           experimental_op_resolver_type=resolver)
            keys = self._interp.get_signature_list()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError on a bad model
            raise ArtifactError(f"{path}: the interpreter refused the model: {_line(e)}") from None
        self._runners: dict[str, Any] = {}
        for mode in m["modes"]:
            key = m["signatures"][mode]["key"]
            if key not in keys:
                raise ArtifactError(f"{path}: no signature {key!r} (has {sorted(keys)})")
            runner = self._interp.get_signature_runner(key)
            check_model_io(m, mode, {"inputs": _io(runner.get_input_details()),
                                     "outputs": _io(runner.get_output_details())}, str(path))
            self._runners[mode] = runner
        try:  # prepares every subgraph now, so a model the interpreter cannot run fails in load()
            self._calls = {mode: _fast_call(runner) or runner for mode, runner in self._runners.items()}
        except Exception as e:
            raise ArtifactError(f"{path}: the interpreter cannot prepare the model: {_line(e)}") from None
        # every subgraph is prepared, so XNNPACK holds its packed weights: this interpreter's
        # own mapping of the file (the one that appeared while it loaded) can let them go
        self.released_bytes = (_repacked.release(path, _repacked.file_mappings(path) - before)
                               if repacks else 0)

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._run("lookup", user=user, exclude=exclude)
        return out["scores"], out["items"]

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._run("history", history=items, length=length)
        return out["scores"], out["items"]

    def runner(self, mode: str) -> Any:
        """The bare signature runner (for benchmarks measuring the runtime's own overhead)."""
        return self._runners[mode]

    def _run(self, mode: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return self._calls[mode](**inputs)
        except Exception as e:
            raise ArtifactError(f"the {self.name} interpreter failed on {mode!r}: {_line(e)}") from None


def _fast_call(runner: Any) -> Any:
    """The signature call without the runner's per-call resize + AllocateTensors.

    ``SignatureRunner.__call__`` resizes every input to the shape it is given and re-allocates
    the tensors on every call (about 8 us of a 200 us Gowalla request, measured). Our inputs
    always have the signature's fixed shapes (checked against the manifest at load and built
    by the recommender), so after one allocation SetTensor / Invoke / GetTensor is the same
    computation. This reaches into the runner's private wrapper: when the installed interpreter
    has no such attributes, None, and the public call is used.
    """
    try:
        wrapper = runner._interpreter_wrapper
        subgraph = runner._subgraph_index
        inputs = dict(runner._inputs)
        outputs = list(runner._outputs)
        set_tensor, invoke, get_tensor = wrapper.SetTensor, wrapper.Invoke, wrapper.GetTensor
        allocate = wrapper.AllocateTensors
    except (AttributeError, TypeError):  # another interpreter build: the public API
        return None
    allocate(subgraph)  # a model the interpreter cannot prepare raises here, i.e. in load()

    def call(**feeds: np.ndarray) -> dict[str, np.ndarray]:
        if feeds.keys() != inputs.keys():
            raise ValueError(f"inputs {sorted(feeds)}, expected {sorted(inputs)}")
        for name, value in feeds.items():
            set_tensor(inputs[name], value, subgraph)
        invoke(subgraph)
        return {name: get_tensor(index, subgraph) for name, index in outputs}

    return call


def _io(details: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {n: (np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"])) for n, d in details.items()}


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{e.__class__.__name__}: {text[:300]}"
