"""One-op models (``y = x + 1``, float32[1]) that give a *bare interpreter* to measure against.

A target's memory cost over a bare interpreter leaves out what any model pays: the interpreter
library's own allocations when its first instance is created (several MB for LiteRT with
XNNPACK). Made once with the TFLite converter and ``onnx.helper``; stored as base64 so the
device needs neither.
"""

from __future__ import annotations

import base64
from typing import Any

_TFLITE = (
    "HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAHAAAAHQAAAA8AQAATAEAAIwCAAADAAAAAAAAAAIA"
    "AAA0AAAABAAAANz///8FAAAABAAAABMAAABDT05WRVJTSU9OX01FVEFEQVRBAAgADAAIAAQACAAAAAQAAAAEAAAA"
    "EwAAAG1pbl9ydW50aW1lX3ZlcnNpb24ABgAAAMQAAAC8AAAAqAAAAJgAAAB0AAAABAAAAG7///8EAAAAYAAAABAA"
    "AAAAAAAACAAOAAgABAAIAAAAEAAAACQAAAAAAAYACAAEAAYAAAAEAAAAAAAAAAwAGAAUABAADAAEAAwAAAD/W6tj"
    "fSDdiQMAAAACAAAABAAAAAYAAAAyLjIxLjAAANr///8EAAAAEAAAADEuNS4wAAAAAAAAAAAAAAAEAAYABAAAAAAA"
    "BgAIAAQABgAAAAQAAAAEAAAAAACAP5j+//+c/v//DwAAAE1MSVIgQ29udmVydGVkLgABAAAAFAAAAAAADgAYABQA"
    "EAAMAAgABAAOAAAAFAAAABwAAABcAAAAYAAAAGQAAAAEAAAAbWFpbgAAAAABAAAAFAAAAAAADgAUAAAAEAAMAAsA"
    "BAAOAAAAEAAAAAAAAAsMAAAAEAAAABz///8BAAAAAgAAAAIAAAAAAAAAAQAAAAEAAAACAAAAAQAAAAAAAAADAAAA"
    "hAAAADwAAAAEAAAAnv///wAAAAEQAAAAEAAAAAMAAAAYAAAAbP///wgAAABJZGVudGl0eQAAAAABAAAAAQAAANL/"
    "//8AAAABEAAAABAAAAACAAAAFAAAAKD///8FAAAAYWRkL3kAAAAAAAAAAAAWABgAFAAAABAADAAIAAAAAAAAAAcA"
    "FgAAAAAAAAEQAAAAEAAAAAEAAAAQAAAA5P///wEAAAB4AAAAAQAAAAEAAAABAAAACAAAAAQABAAEAAAA"
)
_ONNX = (
    "CAgSFGVkZ2VyZWMtZGV2aWNlX2JlbmNoOksKEAoBeAoDb25lEgF5IgNBZGQSBGJhcmUqDwgBEAEiBAAAgD9CA29u"
    "ZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBE="
)


def run_bare_interpreter(module_name: str, module: Any, threads: int = 1) -> bool:
    """Create one interpreter of ``module`` on a one-op model and run it once; False when the
    module is not an interpreter this knows (the numpy reference has none)."""
    import numpy as np

    x = np.ones(1, np.float32)
    if module_name.endswith(".interpreter") and hasattr(module, "Interpreter"):
        interp = module.Interpreter(model_content=base64.b64decode(_TFLITE), num_threads=threads)
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        return True
    if module_name == "onnxruntime":
        opts = module.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = module.InferenceSession(base64.b64decode(_ONNX), opts, providers=["CPUExecutionProvider"])
        sess.run(None, {"x": x})
        return True
    return False
