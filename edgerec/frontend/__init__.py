"""Frontends: what a user hands edgerec, turned into a checkpoint the compiler lowers.

``from_pyg`` takes a model trained in the user's own PyTorch Geometric code.
"""

from edgerec.frontend.pyg import FrontendError, from_pyg

__all__ = ["FrontendError", "from_pyg"]
