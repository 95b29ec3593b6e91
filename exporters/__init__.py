"""Exporters: IR -> verified on-device artifact (TFLite, ONNX, or numpy tables).

Heavy toolkits (tensorflow, onnx, onnxruntime) are imported only inside the target that needs
them.
"""

from exporters.export import TARGETS, export_ir, ir_fingerprint

__all__ = ["TARGETS", "export_ir", "ir_fingerprint"]
