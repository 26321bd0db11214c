"""User-facing errors: one clear line each, turned into a non-zero exit by the CLI."""


class UserError(ValueError):
    """Bad input from the user (a file, a key, a value). Its message is the whole story."""


class ConfigError(UserError):
    """A config key is unknown, mistyped or out of range."""
