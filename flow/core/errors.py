"""One exception hierarchy for the whole project.

Every error a user can cause or meet derives from :class:`FedweaveError`, so the CLI
can catch it once and print one line; each backend family has its own subclass.
"""

from __future__ import annotations


class FedweaveError(Exception):
    """Base of every error raised on purpose by fedweave."""

    #: exit code the CLI uses when this error reaches it
    exit_code: int = 1


class ValidationError(FedweaveError):
    """A DSL/conf/params problem found before anything runs. Carries every problem."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(FedweaveError):
    """service_conf.yaml, route table or another setting is wrong."""

    exit_code = 2


class ComputingError(FedweaveError):
    """A computing backend failed (bad operation, worker crash)."""


class StorageError(FedweaveError):
    """A table cannot be read or written (missing, wrong schema, permissions)."""


class TableExists(StorageError):
    """A table of that name is already stored and replacing it was not asked for (``--drop``)."""

    exit_code = 2


class FederationError(FedweaveError):
    """Talking to another party failed."""


class FederationTimeout(FederationError):
    """A peer did not send what we waited for in time."""


class PeerFailed(FederationError):
    """Another party told us it failed; carries its reason."""


class CodecError(FederationError):
    """A payload could not be encoded or decoded safely (unknown type, pickle, corruption)."""


class AuthError(FederationError):
    """A message's signature, checksum or addressing is not what we expect."""


class CryptoError(FedweaveError):
    """Encryption/key problems (wrong key, overflow of the plaintext space)."""


class ComponentError(FedweaveError):
    """A component refused its input or failed while running."""


class StoreError(FedweaveError):
    """The job/task metadata store is unreachable or holds no such record."""


class JobNotFound(StoreError):
    exit_code = 2


class InvalidIdentifier(ValidationError):
    """A job id, role, party id, table or other name that cannot be one (it would leave its
    folder, or is no name at all); one problem line naming the field."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__([problem])
