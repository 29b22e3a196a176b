"""Typed errors. Every message says what happened and what to do about it.

The CLI prints any ``DatagenError`` as one red line and exits with ``exit_code``;
anything else is a bug and keeps its traceback.
"""


class DatagenError(Exception):
    """Base class for errors a user can act on."""

    exit_code = 1


class InputError(DatagenError):
    """A seed file, data directory or argument cannot be used as given."""

    exit_code = 2


class ConfigError(DatagenError):
    """A config file or flag combination is invalid."""

    exit_code = 2


class TemplateError(DatagenError):
    """A prompt template is missing, malformed, or reaches outside the sandbox."""

    exit_code = 2


class ModelError(DatagenError):
    """A model cannot be found, verified or prepared."""


class EngineError(DatagenError):
    """The generation engine failed (start-up, server unreachable, retries exhausted)."""


class StorageError(DatagenError):
    """Writing or reading shards / the manifest failed (disk full, corrupt file, lock held)."""


class ResumeError(DatagenError):
    """An output directory holds a run with a different config; pass --overwrite or a new --out."""

    exit_code = 2
