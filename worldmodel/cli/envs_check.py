"""`wm envs check ID`: does a (user's) env follow the goal-image protocol of envs/protocol.py?

Before hours of collection and training, a user learns in a second whether every command will
accept their env: one line per problem on stderr (exit code 2), an "ok" line per passed check.
"""

from __future__ import annotations

import typer

from envs.protocol import check_env
from envs.registration import require_registered
from worldmodel.common.console import make_console
from worldmodel.config.schema import load_config
from worldmodel.config.user_envs import adopt_user_modules

console = make_console()
err_console = make_console(stderr=True)


def envs_check_command(
    env_id: str = typer.Argument(..., help="Gymnasium id of your env, e.g. my_lab/Reacher-v0."),
    overrides: list[str] = typer.Argument(None, help="import=my_pkg.my_envs (registers your env)."),
    seed: int = typer.Option(0, help="Reset seed."),
    steps: int = typer.Option(3, help="Random actions to take, each observation and info checked."),
    user_module: str = typer.Option("", "--import", help="Import this module first (registers your envs)."),
) -> None:
    """Check an env against the goal-image protocol (envs/protocol.py): spaces, dtypes, the goal
    image's shape, `is_success` a bool, the optional `distance`; one line per problem, exit 2."""
    config = load_config(overrides)
    adopt_user_modules(config, given=user_module)
    require_registered(env_id)
    findings = check_env(env_id, seed=seed, steps=max(steps, 0))
    problems = [f for f in findings if not f.ok]
    for finding in problems:
        err_console.print(f"{env_id}: {finding.text}", markup=False, highlight=False, soft_wrap=True)
    for finding in findings:
        if finding.ok:
            console.print(f"ok  {finding.text}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"{env_id}: follows the goal-image protocol", markup=False, highlight=False)
