"""User-facing errors: one clear line each, turned into a non-zero exit by the CLI."""


class UserError(ValueError):
    """Bad input from the user (a file, a key, a value). Its message is the whole story."""


class ConfigError(UserError):
    """A config key is unknown, mistyped or out of range."""


def require(ok: bool, key: str, expected: str, got: object) -> None:
    """The one config check every section uses: `config key 'k': expected E, got G` on failure."""
    if not ok:
        raise ConfigError(f"config key '{key}': expected {expected}, got {got!r}")
