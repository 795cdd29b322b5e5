"""Errors meant for users: one clear sentence, and the fix where there is one.

The command line prints `LaminaError`s as one line on stderr and exits with status 2.
"""


class LaminaError(Exception):
    """A mistake in what the user asked for (not a bug in lamina)."""


class ModelSpecError(LaminaError):
    """The model spec names nothing we can load."""


class UnsupportedArchitectureError(LaminaError):
    """No anatomy adapter describes this architecture."""


class SiteError(LaminaError):
    """A site name that does not exist on this model."""


class InputError(LaminaError):
    """Bad input text, file or option."""


class AnatomyCheckError(LaminaError):
    """An adapter points at the wrong module: a residual identity does not hold."""


class MissingExtraError(LaminaError, ImportError):
    """An optional dependency (a pip extra) is not installed."""
