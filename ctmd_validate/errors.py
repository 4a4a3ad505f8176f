"""Exceptions that mean the tool itself could not run (exit code 2)."""

from __future__ import annotations

__all__ = ["ConfigError", "CtmdError", "ProfileError"]


class CtmdError(Exception):
    """Base class: the validator could not run as asked."""


class ProfileError(CtmdError):
    """A profile file is missing or malformed."""


class ConfigError(CtmdError):
    """A severity/waiver config file is missing or malformed."""
