"""edgerec: compile graph-neural-network recommenders into small, verified on-device models."""

__version__ = "0.1.0"
