"""Errors shared by modules that must not import each other (the index and its stores, the
embedders and the model loader)."""


class IndexProblem(RuntimeError):
    """The index is missing, damaged or does not fit the settings; the message says what to do."""


class ModelError(RuntimeError):
    """The model cannot be had or does not verify; the message says what to do."""
