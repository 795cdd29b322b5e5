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
class StoreError(LaminaError):
    """An activation store that is corrupt, incomplete, or being written by another process."""


class RayJobError(LaminaError):
    """A Ray job that Ray itself could not finish (an actor or node died, memory ran out): not the store's fault."""


class NotCapturedError(SiteError, KeyError):
    """A site that was not captured: a KeyError (as dict lookups raise) that is also a LaminaError."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def is_disk_full(err: BaseException) -> bool:
    """True for a full disk or quota, whether raised as OSError or wrapped by a library (safetensors)."""
    import errno

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left on device" in text or "StorageFull" in text or "Disk quota exceeded" in text
