"""The command-line override language: `key=value` words turned into one merged omegaconf tree.

Kept apart from the schema (`worldmodel.config.schema`) because it is about what users type, not about
what a run needs: short aliases (`seed=1`), a command's own section (`wm collect episodes=10`),
keys that only one section has (`lr=1e-3` is `pretrain.lr` when nothing else has an `lr`), list
indices (`jepa.masks.generators.1.spatial_scale=[0.4,0.4]`), and one-line errors that name the
key and list the valid ones.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from worldmodel.common.errors import ConfigError

# Short names users type most; `import` and `env` read naturally on a command line.
ALIASES = {
    "split": "env.split",
    "import": "env.user_module",
    "image_size": "env.image_size",
    "seed": "run.seed",
    "name": "run.name",
    "threads": "run.num_threads",
    "device": "run.device",
}
# Per-command aliases whose value is wrapped in a list: `wm collect env=X` collects from X only.
LIST_ALIASES = {("collect", "env"): "collect.envs"}


def split_preset(overrides: list[str], preset: str | None, default: str) -> tuple[str, list[str]]:
    """Pull `preset=NAME` out of the overrides (the last one wins over `preset`)."""
    rest = []
    for item in overrides:
        if item.startswith("preset="):
            preset = item.split("=", 1)[1]
        else:
            rest.append(item)
    return preset or default, rest


def qualify(override: str, section: str | None, schema: DictConfig) -> str:
    """Turn `episodes=3` into `collect.episodes=3` when the key belongs to the command's section."""
    if "=" not in override:
        raise ConfigError(f"override '{override}': expected key=value")
    key, value = override.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{override}': empty key")
    if (section, key) in LIST_ALIASES:
        wrapped = value if value.startswith("[") else f"[{value}]"
        return f"{LIST_ALIASES[(section, key)]}={wrapped}"
    if "." not in key:
        if section and key not in schema and key in schema[section]:
            key = f"{section}.{key}"
        elif key == "env":
            key = "env.id"
        elif key in ALIASES:
            key = ALIASES[key]
        elif key not in schema:
            owners = [name for name in schema if isinstance(schema[name], DictConfig) and key in schema[name]]
            if len(owners) == 1:
                key = f"{owners[0]}.{key}"
            elif len(owners) > 1:
                choices = ", ".join(f"{o}.{key}" for o in owners)
                raise ConfigError(f"override '{override}': ambiguous key, write one of {choices}")
    return f"{key}={value}"


def merge_overrides(config: DictConfig, dotlist: list[str]) -> DictConfig:
    """Merge qualified `key=value` overrides into `config`; omegaconf errors pass through."""
    # A dotlist merge cannot index into a list, so overrides with an index in their key are
    # applied one by one after the others.
    indexed = [o for o in dotlist if any(part.isdigit() for part in o.split("=", 1)[0].split("."))]
    merged = OmegaConf.merge(config, OmegaConf.from_dotlist([o for o in dotlist if o not in indexed]))
    for override in indexed:
        key, value = override.split("=", 1)
        _set_list_item(merged, key, OmegaConf.from_dotlist([f"value={value}"]).value)
    return merged


def _set_list_item(config: DictConfig, key: str, value: object) -> None:
    """Set `key` (with a list index in it) or raise a ConfigError naming the key."""
    node = config
    for part in key.split(".")[:-1]:
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"command line: config key '{key}': index {part} out of range "
                    f"(expected 0..{len(node) - 1})"
                )
            node = node[int(part)]
        else:
            if part not in node:
                break  # OmegaConf.update below names the unknown key
            node = node[part]
    OmegaConf.update(config, key, value, merge=True)


def describe_error(err: OmegaConfBaseException, where: str, schema: DictConfig) -> str:
    """One line naming the key; an unknown key also lists the valid keys of its section."""
    key = getattr(err, "full_key", None) or "?"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if type(err).__name__ == "ConfigKeyError":
        parent = key.rsplit(".", 1)[0] if "." in key else None
        valid = _valid_keys(parent, schema)
        return f"{where}: unknown config key '{key}' (valid keys{' in ' + parent if parent else ''}: {valid})"
    return f"{where}: config key '{key}': {first_line}"


def _valid_keys(section: str | None, schema: DictConfig) -> str:
    node: Any = schema
    try:
        if section:
            for part in section.split("."):
                node = node[part]
        return ", ".join(str(k) for k in node)
    except (OmegaConfBaseException, KeyError, TypeError):
        return "see `wm config show`"
