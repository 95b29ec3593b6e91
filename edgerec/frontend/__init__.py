"""Frontends: what a user hands edgerec, turned into a checkpoint the compiler lowers.

``from_pyg`` takes a model trained in the user's own PyTorch Geometric code (LightGCN in
:mod:`~edgerec.frontend.pyg`, the GraphSAGE / GCN / GAT encoders in
:mod:`~edgerec.frontend.basic_gnn`); :mod:`~edgerec.frontend.graph` reads the graph and ids.
``from_embeddings`` (:mod:`~edgerec.frontend.embeddings`) takes final tables computed elsewhere.
"""

from edgerec.frontend.embeddings import from_embeddings
from edgerec.frontend.pyg import FrontendError, from_pyg

__all__ = ["FrontendError", "from_embeddings", "from_pyg"]
