"""User-facing errors.

Every error a user can cause (a bad path, a bad config, an unknown component, a checkpoint that
does not match) is a :class:`ProtodiffError` whose message is one line naming the problem and the
fix. The CLI prints exactly that line and exits with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class ProtodiffError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class ConfigError(ProtodiffError):
    """A config file or override that does not match the schema."""


class UnknownComponentError(ProtodiffError, KeyError):
    """A component name that no registry entry matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RegistrationError(ProtodiffError):
    """A plugin registered something invalid: a bad name, a duplicate, or the wrong type."""


class UnknownKindError(ProtodiffError, AttributeError):
    """A kind of component that no plugin added (``registries().encoder`` without the Patronus
    plugin). Also an AttributeError, as the registries' attributes are the kinds."""


class CheckpointError(ProtodiffError):
    """A checkpoint directory that is missing, incomplete or does not match the model."""


class DataError(ProtodiffError):
    """A dataset that is missing, malformed or unreadable."""


class TrainingDiverged(ProtodiffError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class UnsupportedData(ProtodiffError):
    """A dataset that lacks what a tool needs (attribute labels, say): the tool cannot run on it
    however it is configured, so the bench plans the cell without it and says so."""


class UnsupportedModel(ProtodiffError):
    """A model given to a tool that needs another kind (a prototype tool given a model without prototypes)."""


class OptionError(ProtodiffError, ValueError):
    """An option value that is out of range for what it is used with: a timestep beyond the model's
    schedule, more sampler steps than the schedule has, a name the model does not have. (Also a
    ValueError, for code that catches those.)"""


class ProtodiffWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it as one
    ``protodiff: warning: ...`` line."""
