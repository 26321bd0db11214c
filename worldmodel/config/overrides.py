"""The command-line override language: `key=value` words turned into one merged omegaconf tree.

Kept apart from the schema (`worldmodel.config.schema`) because it is about what users type, not about
what a run needs: short aliases (`seed=1`), a command's own section (`wm collect episodes=10`),
keys that only one section has (`lr=1e-3` is `pretrain.lr` when nothing else has an `lr`), list
indices (`jepa.masks.generators.1.spatial_scale=[0.4,0.4]`), and one-line errors that name the
key, suggest a close known one (`did you mean 'eval.episodes'?`) and list the valid ones.
"""

from __future__ import annotations

import difflib
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
# How alike an unknown key and a known one must be (difflib ratio) to be offered as "did you mean".
SUGGEST_CUTOFF = 0.75


def split_preset(overrides: list[str], preset: str | None, default: str) -> tuple[str, list[str]]:
    """Pull `preset=NAME` out of the overrides (the last one wins over `preset`)."""
    rest = []
    for item in overrides:
        if item.startswith("preset="):
            preset = item.split("=", 1)[1]
        else:
            rest.append(item)
    return preset or default, rest


def qualify(override: str, sections: str | tuple[str, ...] | None, schema: DictConfig) -> str:
    """Turn `episodes=3` into `collect.episodes=3` when the key belongs to the command's section.

    A command may own several sections (`wm eval` and `wm plan`: eval, then plan): a bare key is
    looked up in the first, then among the aliases (`seed` is run.seed), then in the others.
    """
    sections = (sections,) if isinstance(sections, str) else tuple(sections or ())
    section, others = (sections[0], sections[1:]) if sections else (None, ())
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
        elif key not in schema and any(key in schema[s] for s in others):
            key = f"{next(s for s in others if key in schema[s])}.{key}"
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


def describe_error(
    err: OmegaConfBaseException, where: str, schema: DictConfig, section: str | None = None
) -> str:
    """One line naming the key; an unknown key also suggests close known keys and lists its section's
    (omegaconf's own message already suggests one for a key inside a list item)."""
    key = getattr(err, "full_key", None) or "?"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if type(err).__name__ == "ConfigKeyError":
        guess = did_you_mean(key.replace("[", ".").replace("]", ""), schema, section)
        parent = key.rsplit(".", 1)[0] if "." in key else None
        valid = _valid_keys(parent, schema)
        return (
            f"{where}: unknown config key '{key}'{guess} "
            f"(valid keys{' in ' + parent if parent else ''}: {valid})"
        )
    return f"{where}: config key '{key}': {first_line}"


def did_you_mean(key: str, schema: DictConfig, section: str | None = None) -> str:
    """`, did you mean 'eval.episodes'?` for a key a small typo away from known ones, else ``.

    A dotted key is matched against its section's keys; a bare word against section names, aliases
    and every section's own keys (those of the command's `section` first, as `qualify` reads them).
    """
    parent, _, word = key.rpartition(".")
    if parent:
        known = {name: [f"{parent}.{name}"] for name in _keys_under(parent, schema)}
    else:
        known = _bare_words(schema, section)
    close = difflib.get_close_matches(word, list(known), n=3, cutoff=SUGGEST_CUTOFF)
    suggestions = list(dict.fromkeys(full for name in close for full in known[name]))[:3]
    if not suggestions:
        return ""
    return f", did you mean {' or '.join(repr(s) for s in suggestions)}?"


def _bare_words(schema: DictConfig, section: str | None) -> dict[str, list[str]]:
    """Every word `qualify` accepts without a dot, mapped to what to suggest for it."""
    words: dict[str, list[str]] = {}
    for name in schema:
        node = schema[name]
        if not isinstance(node, DictConfig):
            continue
        for leaf in node:
            words.setdefault(str(leaf), []).append(f"{name}.{leaf}")
    if section:  # the command's own section is what a bare word means first
        for leaf, owners in words.items():
            if f"{section}.{leaf}" in owners:
                words[leaf] = [f"{section}.{leaf}"]
    words.update({str(name): [str(name)] for name in schema})
    words.update({alias: [alias] for alias in ALIASES})
    return words


def _keys_under(path: str, schema: DictConfig) -> list[str]:
    """The keys of the config node at dotted `path` ("" = the top; list items by index), or none."""
    node: Any = schema
    try:
        for part in path.split(".") if path else []:
            node = node[int(part)] if isinstance(node, ListConfig) else node[part]
        return [str(k) for k in node] if isinstance(node, DictConfig) else []
    except (OmegaConfBaseException, KeyError, TypeError, ValueError, IndexError):
        return []


def _valid_keys(section: str | None, schema: DictConfig) -> str:
    return ", ".join(_keys_under(section or "", schema)) or "see `wm config show`"
