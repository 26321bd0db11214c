"""Users' env modules (`import=` / `--import`, stored as `env.user_module`).

A command imports them before it makes an env, and records them in its config, so a run's
config.yaml (and an eval's results.json) names the module. Commands that read a run (`wm eval
world_model=runs/ac/x`, `wm cache encoder=runs/pretrain/x`, `Agent.from_run`) find the module
there again: nobody has to repeat `import=` for a run that was made with it. Datasets `wm collect`
writes record the module too (a root attribute), so `wm pretrain` / `cache` / `train` on them find it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from data.episodes import dataset_user_module
from envs.registration import import_user_module
from worldmodel.config.schema import Config

RUN_CONFIG = "config.yaml"  # the resolved config every training stage saves in its run folder


def module_names(value: str) -> list[str]:
    """The module names of an `env.user_module` value (comma separated)."""
    return [name.strip() for name in str(value or "").split(",") if name.strip()]


def run_config_path(run: str | Path) -> Path | None:
    """The config.yaml of a run folder, or of the folder holding a run file; None if `run` is no path."""
    if not run or not Path(run).exists():
        return None
    path = Path(run)
    return (path if path.is_dir() else path.parent) / RUN_CONFIG


def recorded_user_module(run: str | Path) -> str:
    """`env.user_module` in the config.yaml of a run folder (or of the folder holding a run file
    such as encoder.safetensors); "" when there is none or `run` is not an existing path."""
    saved = run_config_path(run)
    try:
        data = yaml.safe_load(saved.read_text()) if saved is not None and saved.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    env = data.get("env") if isinstance(data, dict) else None
    return str(env.get("user_module") or "") if isinstance(env, dict) else ""


def adopt_user_modules(
    config: Config,
    runs: Iterable[str | Path] = (),
    given: str = "",
    load: bool = True,
    datasets: Iterable[str | Path] = (),
) -> list[str]:
    """Set `config.env.user_module` to every module named by `given` (--import), the config
    (import=), the config.yaml of each of `runs` and the root attributes of each of `datasets`, and
    import them (`load`); return the names.

    A module a run recorded that no longer imports fails with one line naming that run."""
    sources: dict[str, str] = {}  # module -> the run or dataset that recorded it ("" = given now)
    for run in runs:
        for name in module_names(recorded_user_module(run)):
            sources.setdefault(name, str(run))
    for dataset in datasets:
        for name in module_names(dataset_user_module(dataset) if dataset else ""):
            sources.setdefault(name, str(dataset))
    for name in [*module_names(given), *module_names(config.env.user_module)]:
        sources.setdefault(name, "")
    config.env.user_module = ",".join(sources)
    if load:
        for name, run in sources.items():
            try:
                import_user_module(name)
            except ValueError as err:
                where = f" (recorded in {_record_of(run)})" if run else ""
                raise ValueError(f"{err}{where}") from None
    return list(sources)


def _record_of(source: str) -> Path | str:
    """Where a recorded module name was read: a run's config.yaml, or the dataset itself."""
    config = run_config_path(source)
    return config if config is not None and config.is_file() else source
