"""The override language on its own: how a bare word finds its section (load_config's tests cover the rest)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from worldmodel.common.errors import ConfigError
from worldmodel.config.overrides import did_you_mean, merge_overrides, qualify, split_preset
from worldmodel.config.schema import Config

SCHEMA = OmegaConf.structured(Config)


@pytest.mark.parametrize(
    ("override", "section", "expected"),
    [
        ("episodes=3", "collect", "collect.episodes=3"),  # the command's own section first
        ("seed=1", None, "run.seed=1"),  # alias
        ("env=jepa_wm/Push-v0", None, "env.id=jepa_wm/Push-v0"),
        ("env=jepa_wm/Push-v0", "collect", "collect.envs=[jepa_wm/Push-v0]"),  # list alias
        ("plan.horizon=4", "collect", "plan.horizon=4"),  # dotted keys are left alone
        ("horizon=5", None, "plan.horizon=5"),  # the one section that has it
    ],
)
def test_qualify(override: str, section: str | None, expected: str) -> None:
    assert qualify(override, section, SCHEMA) == expected


def test_qualify_rejects_words_without_a_value() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        qualify("episodes", None, SCHEMA)


def test_split_preset_takes_the_last_one() -> None:
    assert split_preset(["preset=small", "seed=1", "preset=tiny"], None, "x") == ("tiny", ["seed=1"])
    assert split_preset(["seed=1"], None, "tiny") == ("tiny", ["seed=1"])


def test_merge_overrides_sets_list_items_after_the_rest() -> None:
    merged = merge_overrides(SCHEMA, ["jepa.masks.generators.1.num_blocks=3", "run.seed=4"])
    assert merged.jepa.masks.generators[1].num_blocks == 3 and merged.run.seed == 4


def test_a_bare_key_two_sections_share_is_refused() -> None:
    with pytest.raises(ConfigError, match="ambiguous key, write one of pretrain.warmup_steps"):
        qualify("warmup_steps=5", None, SCHEMA)


@pytest.mark.parametrize(
    ("key", "section", "suggestion"),
    [
        ("episods", "eval", ", did you mean 'eval.episodes'?"),  # the command's own section
        ("episods", None, ", did you mean 'collect.episodes' or 'eval.episodes'?"),
        ("eval.episods", None, ", did you mean 'eval.episodes'?"),
        ("plan.sampels", None, ", did you mean 'plan.samples'?"),
        ("sed", None, ", did you mean 'seed'?"),  # an alias
        ("evl", None, ", did you mean 'eval'?"),  # a section name
        ("jepa.encoder.embed_dm", None, ", did you mean 'jepa.encoder.embed_dim'?"),
        ("zzzz", None, ""),
        ("collect.nope", None, ""),
    ],
)
def test_did_you_mean(key: str, section: str | None, suggestion: str) -> None:
    assert did_you_mean(key, SCHEMA, section) == suggestion


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("split=heldout", "eval.split=heldout"),  # the first section wins over the alias env.split
        ("lr=0.2", "plan.lr=0.2"),  # not in eval: the second section (pretrain and train have lr too)
        ("seed=3", "run.seed=3"),  # an alias wins over the second section's plan.seed
        ("episodes=4", "eval.episodes=4"),
        ("plan.samples=8", "plan.samples=8"),
    ],
)
def test_qualify_with_two_sections(override: str, expected: str) -> None:
    schema = OmegaConf.structured(Config)
    assert qualify(override, ("eval", "plan"), schema) == expected
