"""Errors that ccvae raises for bad input.

Every user-facing failure (bad argument, missing or corrupt file, unknown dataset,
incompatible checkpoint) is one of these, with a message that says what to do.
The CLI and the dashboard catch ``CCVAEError`` and show its message alone, never
a traceback. They subclass ``ValueError`` so that generic callers that already
catch ``ValueError`` for bad arguments keep working.
"""

from __future__ import annotations


class CCVAEError(ValueError):
    """Base class of every error ccvae raises for bad input or bad files."""


class ConfigError(CCVAEError):
    """An invalid setting: unknown geometry, latent dimension 0, a bad flag value."""


class DataError(CCVAEError):
    """A dataset that is unknown, missing, truncated, or fails its checksum."""


class ChecksumError(DataError):
    """A downloaded or on-disk file whose checksum differs from the published one."""


class CheckpointError(CCVAEError):
    """A checkpoint that is missing, corrupt, incompatible or unsafe to load."""


class TrainingError(CCVAEError):
    """Training that cannot go on (for example a non-finite loss)."""
