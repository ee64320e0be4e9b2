"""The tunegate exception tree.

Every error tunegate raises on purpose derives from :class:`TunegateError`; the CLI maps
them to one clear line and a non-zero exit code. Where an error is also a standard kind of
error, it inherits that too, so ``except ValueError`` keeps working::

    TunegateError
     ├── ConfigError(ValueError)          tunegate.yaml is missing, malformed or invalid
     ├── InputError(ValueError)           bad user input (file, field, argument)
     │    ├── LeakageError                evaluation data overlaps training data
     │    └── ConflictError               a write conflicts with what is stored (HTTP 409)
     ├── MissingExtraError(ImportError)   an optional dependency is not installed
     ├── NotFoundError(LookupError)       a record (suite, model, run...) does not exist
     ├── StoreError                       the database failed or is at the wrong revision
     ├── ModelError                       a model could not be loaded or run
     │    └── LlmError                    an LLM endpoint failed or answered malformed
     │         └── LlmUnavailableError(ConnectionError)  the endpoint cannot be reached
     ├── RegistryError                    a promotion/rollback was refused
     └── GateClosedError                  the fine-tuning gate is closed
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "GateClosedError",
    "InputError",
    "LeakageError",
    "LlmError",
    "LlmUnavailableError",
    "MissingExtraError",
    "ModelError",
    "NotFoundError",
    "RegistryError",
    "StoreError",
    "TunegateError",
]


class TunegateError(Exception):
    """Base class of every error tunegate raises on purpose."""

    exit_code: int = 1


class ConfigError(TunegateError, ValueError):
    """``tunegate.yaml`` is missing, malformed or has invalid values."""

    exit_code = 2


class InputError(TunegateError, ValueError):
    """Bad user input: a file, a field or an argument."""

    exit_code = 2


class LeakageError(InputError):
    """Evaluation examples overlap training data (exactly or as near-duplicates)."""


class ConflictError(InputError):
    """A write conflicts with what is stored: a second open override of a decision, or an
    idempotency key reused with a different request (the service answers 409)."""


class MissingExtraError(TunegateError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install``."""

    exit_code = 3


class NotFoundError(TunegateError, LookupError):
    """A record that was asked for does not exist in the store."""


class StoreError(TunegateError):
    """The database failed, or its schema is at the wrong revision."""


class ModelError(TunegateError):
    """A model could not be loaded or run."""


class LlmError(ModelError):
    """An LLM endpoint failed after its retries, refused the request, or answered with
    something that is not a Chat Completions response; the message names the URL."""


class LlmUnavailableError(LlmError, ConnectionError):
    """An LLM endpoint cannot be reached (refused, timed out, dropped) after its retries; the
    message names the URL and how to start or point to a server."""


class RegistryError(TunegateError):
    """A registry operation (promote, rollback) was refused."""


class GateClosedError(TunegateError):
    """The fine-tuning gate is closed; the message says which condition failed."""
