"""One exception type for every mistake a user can fix.

The CLI catches :class:`UserError`, prints its message as one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a file, a field or a value the user can correct. The message is one line."""


class ConfigError(UserError):
    """A recipe, study or ablation file that does not match its schema."""


class DataError(UserError):
    """A missing, incomplete or corrupt dataset."""
