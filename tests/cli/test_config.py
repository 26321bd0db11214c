"""Config resolution: presets, overrides, aliases, and one-line errors with exit code 2."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_wm_subprocess
from worldmodel.common.errors import ConfigError
from worldmodel.config.schema import available_presets, load_config


def test_presets_exist_and_validate() -> None:
    assert {"tiny", "small"} <= set(available_presets())
    for preset in available_presets():
        assert load_config(preset=preset).preset == preset


def test_section_shorthand_and_aliases() -> None:
    config = load_config(["env=jepa_wm/Push-v0", "episodes=3", "split=heldout", "seed=7"], section="collect")
    assert config.collect.envs == ["jepa_wm/Push-v0"]
    assert config.collect.episodes == 3
    assert config.env.split == "heldout"
    assert config.run.seed == 7


def test_list_items_are_overridable_by_index() -> None:
    """One mask generator changed from the command line, the other left as configured."""
    config = load_config(
        ["jepa.masks.generators.1.spatial_scale=[0.4,0.4]", "collect.envs.0=jepa_wm/Push-v0"]
    )
    generators = config.jepa.masks.generators
    assert generators[1].spatial_scale == [0.4, 0.4] and generators[1].num_blocks == 2
    assert generators[0].spatial_scale == [0.15, 0.15]
    assert config.collect.envs[0] == "jepa_wm/Push-v0"


def test_yaml_file_as_preset(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("collect:\n  episodes: 9\n")
    assert load_config(preset=str(path)).collect.episodes == 9


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["collect.nope=1"], "unknown config key 'collect.nope'"),
        (["nope=1"], "unknown config key 'nope'"),
        (["collect.episodes=abc"], "collect.episodes"),
        (["collect.episodes=0"], "expected an integer >= 1"),
        (["env.split=test"], "expected train or heldout"),
        (["env.image_size=1000"], "16..256"),
        (["run.num_threads=0"], "run.num_threads"),
        (["preset=nope"], "unknown preset 'nope'"),
        (["novalue"], "expected key=value"),
        (["train.loss_exp=3"], "train.loss_exp"),
        (["train.ensemble=0"], "config key 'train.ensemble': expected an integer >= 1"),
        (["plan.disagreement_weight=-2"], "config key 'plan.disagreement_weight': expected a number >= 0"),
        (["plan.output=median"], "plan.output"),
        (["eval.sim_output=first"], "eval.sim_output"),
        (["eval.object_weight=-1"], "config key 'eval.object_weight': expected a number >= 0"),
        (["eval.object_temperature=0"], "config key 'eval.object_temperature': expected a number > 0"),
        (["jepa.masks.generators.5.num_blocks=2"], "index 5 out of range (expected 0..1)"),
        (["jepa.masks.generators.1.nope=2"], "'nope' not in 'MaskGenSpec'"),
        (["jepa.masks.generators.1.spatial_scale=[2,2]"], "0 < min <= max < 1"),
    ],
)
def test_bad_overrides_raise_one_clear_line(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "section", "hint"),
    [
        (["episods=5"], "eval", "unknown config key 'episods', did you mean 'eval.episodes'?"),
        (["eval.episods=5"], None, "unknown config key 'eval.episods', did you mean 'eval.episodes'?"),
        (["plan.sampels=8"], None, "unknown config key 'plan.sampels', did you mean 'plan.samples'?"),
    ],
)
def test_a_typo_gets_one_line_with_did_you_mean(overrides: list[str], section: str | None, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides, section=section)
    assert hint in str(info.value) and "\n" not in str(info.value)


def test_a_far_off_key_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["frobnicate=1"])
    assert "did you mean" not in str(info.value)


def test_config_show_cli_prints_resolved_yaml(wm) -> None:
    result = wm("config", "show", "small", "collect.episodes=5")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["preset"] == "small"
    assert resolved["collect"]["episodes"] == 5


def test_config_show_cli_bad_key_exits_2_without_traceback(wm) -> None:
    result = wm("config", "show", "tiny", "collect.nope=1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "collect.nope" in result.stderr


def test_config_show_cli_typo_suggests_the_key(wm) -> None:
    result = wm("config", "show", "tiny", "eval.episods=5")
    assert result.returncode == 2
    assert "did you mean 'eval.episodes'?" in result.stderr and result.stderr.strip().count("\n") == 0


def test_debug_flag_shows_traceback() -> None:
    # A real interpreter, so the real traceback is printed.
    result = run_wm_subprocess("config", "show", "tiny", "collect.nope=1", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_ambiguous_bare_key_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="ambiguous key, write one of collect.episodes, eval.episodes"):
        load_config(["episodes=5"])
