"""User-facing errors: each one becomes a single line and a non-zero exit in the CLI."""


class EdgerecError(Exception):
    """Base class: anything the user can fix (bad data, bad checkpoint, refused guard)."""


class DataError(EdgerecError):
    """An input data file is malformed; the message names the file and line."""


class CheckpointError(EdgerecError):
    """A checkpoint directory is missing, corrupt, forged or from another version."""


class IRError(EdgerecError):
    """An IR directory is missing, corrupt, forged or from another version."""


class GuardError(EdgerecError):
    """The accuracy guard refused to emit a compiled model."""


class ExportError(EdgerecError):
    """An exporter could not produce a verified model file."""


class TrainConfigError(EdgerecError, ValueError):
    """A training hyperparameter that would crash or train nothing (a ValueError for API callers)."""


class FrontendError(EdgerecError):
    """A model or graph the PyG frontend cannot compile exactly; the message names what."""
