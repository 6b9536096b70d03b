"""The errors provisioner raises, sorted by what a caller should do about them.

Every error meant for a user derives from `ProvisionerError`, whose message is one clear line.
The subclasses say what happened in terms of meaning, not origin, and each answers the one question
every caller asks: will trying again help? The consumer loop backs off on `retryable` errors and
halts on the rest; the CLI prints any of them as one line; the operator maps them to "retry later"
and "will not fix itself". No caller keeps its own list of exception classes.

This module imports nothing from the rest of the package, so every layer may use it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessError",
    "AuthenticationError",
    "AuthorizationError",
    "ConfigurationError",
    "ConflictError",
    "IncompatibleChangeError",
    "InvalidSpecError",
    "ProvisionerError",
    "SetupError",
    "TLSError",
    "UnavailableError",
    "is_retryable",
]


class ProvisionerError(Exception):
    """Something went wrong that the message explains to a user."""

    #: Whether the same call may succeed later without anyone changing anything.
    retryable: ClassVar[bool] = False
    #: The CLI's exit code for it.
    exit_code: ClassVar[int] = 1


class InvalidSpecError(ProvisionerError):
    """A spec breaks the contract: fix the spec."""


class ConfigurationError(ProvisionerError):
    """The environment is set up wrongly (a missing variable, an unusable state directory, a store
    URL that cannot be found): fix the configuration."""


class IncompatibleChangeError(ProvisionerError):
    """A store holds data a changed spec cannot continue from: rebuild it (the message says how)."""

    exit_code: ClassVar[int] = 3


class SetupError(ProvisionerError):
    """A local server or tool provisioner starts for you could not be started or stopped."""


class UnavailableError(ProvisionerError):
    """A store or Kafka did not answer or failed mid-way: try again later."""

    retryable: ClassVar[bool] = True


class AccessError(UnavailableError):
    """A server answered but refused us: who we are, what we may do, or whom we trust. Retryable:
    a rotated credential, a granted ACL or a renewed certificate fixes it without a restart, so the
    consumer backs off and its status says which of the three it is."""


class AuthenticationError(AccessError):
    """The server did not accept our credentials (a wrong user name or password, a refused mechanism)."""


class AuthorizationError(AccessError):
    """We are who we say, but not allowed this operation on this resource (a missing ACL)."""


class TLSError(AccessError):
    """The TLS handshake failed: a certificate not trusted, not for that host, or our own refused."""


class ConflictError(ProvisionerError):
    """Someone else changed the state this call started from (a fenced write lost): re-read and retry."""

    retryable: ClassVar[bool] = True


def is_retryable(error: BaseException) -> bool:
    """Whether trying again later may help: a `ProvisionerError` says so itself, and an `OSError`
    (a connection refused or reset) is transient; anything else is a bug or a bad input. Kafka's
    client errors are sorted by `provisioner.stream.kafka.is_transient`, which knows that library."""
    if isinstance(error, ProvisionerError):
        return error.retryable
    return isinstance(error, OSError)
