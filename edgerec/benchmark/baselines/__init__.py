"""What edgerec's artifacts are measured against, on the workstation: PyG recomputing the graph
per request (:mod:`.pyg`) and FAISS indexes over the same final vectors (:mod:`.faiss`)."""
