"""`wm eval` and `wm plan`: zero-shot goal-image evaluation, and one planned episode as a video.

The logic lives in `worldmodel/evaluation/evaluate.py` and `worldmodel/evaluation/plan_run.py`; this
module reads the overrides both commands share, picks the world model, fails early on unwritable
outputs and prints the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from envs.registration import require_registered
from worldmodel.common.console import make_console
from worldmodel.common.errors import UserError
from worldmodel.common.plots import writable_output
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import Config, load_config
from worldmodel.config.user_envs import adopt_user_modules
from worldmodel.evaluation.episode_log import episode_file
from worldmodel.evaluation.evaluate import evaluate, write_outputs
from worldmodel.evaluation.plan_run import check_row, prepare_episode, run_episode, write_video
from worldmodel.evaluation.report import distance_text
from worldmodel.evaluation.rows import WORLD_MODEL_ROWS, choose_world_model, split_text
from worldmodel.models.predictor_file import member_files

console = make_console()

OVERRIDES_HELP = "Config overrides as key=value (e.g. eval.episodes=4 eval.split=heldout preset=small)."


def load_evaluation_config(overrides: list[str] | None) -> Config:
    """The config of `wm eval`, `wm plan` and `wm envs goal`: a bare key of the eval or plan section
    means the same under each (`encoder=` is eval.encoder, `split=` eval.split, `lr=` plan.lr)."""
    return load_config(overrides, section=("eval", "plan"))


def import_evaluation_envs(config: Config) -> None:
    """Import the user's env modules: `import=`, and those recorded in the world model's and the
    encoder's run folders (so `wm eval world_model=runs/ac/x` needs no `import=` again)."""
    adopt_user_modules(config, [choose_world_model(config).path, config.eval.encoder])


def use_world_model(config: Config, rows: list[str], command: str) -> str:
    """Set eval.world_model for rows that need one (the given run, else the active preset's) and
    return one line saying which world model or latent is used, and why."""
    needing = [r for r in rows if r in WORLD_MODEL_ROWS]
    if needing:
        choice = choose_world_model(config)
        if not choice.path:
            raise UserError(
                f"row {', '.join(needing)}: no world model to plan with: {choice.reason}; "
                f"set eval.world_model to an AC run folder"
            )
        config.eval.world_model = choice.path
        members = len(member_files(Path(choice.path))) if Path(choice.path).is_dir() else 0
        dims = config.plan.disagreement_dims
        ensemble = (
            f"; an ensemble of {members + 1} predictors, plan.disagreement_weight={config.plan.disagreement_weight:g}"
            + (f" on latent dims {list(dims)}" if dims else "")
            if members
            else ""
        )
        return (
            f"[{command}] world model {choice.path} for row {', '.join(needing)} ({choice.reason}{ensemble})"
        )
    parts = []
    if "simulator" in rows:
        parts.append(f"row simulator: latent '{config.eval.encoder}' (eval.encoder) with simulator dynamics")
    if "oracle" in rows:
        parts.append("row oracle: true positions with simulator dynamics")
    if "random" in rows:
        parts.append("row random: uniform random actions")
    return f"[{command}] no world model: " + "; ".join(parts)


def eval_command(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Zero-shot goal-image evaluation: success table, results.json, plots and report.html.

    Keys (eval.*): tasks, episodes, budget (MPC steps), split, save_episodes (a folder: the played
    episodes as training data, <row>_<Task>.h5; use split=train),
    rows (oracle | simulator | learned, and the baselines random | shooting), encoder, latent_grid, sim_samples, sim_iterations, sim_output (mean | best), sim_action_cost (the simulator rows' plan.action_cost), object_weight (simulator row: the object's position found by colour joins the latent; 16 plans Push), name; planner
    keys: plan.* (plan.output = mean | best for the learned row; plan.action_cost x mean |action|
    steadies its gripper; plan.disagreement_weight weighs an
    ensemble run's disagreement, `wm train train.ensemble=3`, over plan.disagreement_dims: [-2,-1]
    = the object's (x, y) of a run with readout.object_weight). Outputs go to runs/eval/<eval.name>/.
    The learned and shooting rows use eval.world_model, by default the active preset's AC run
    <run.root>/ac/<run.name> (what `wm demo` trains). Bare keys mean the same as under `wm plan`.
    Learned rows also get a forecast check (results.json `forecast_vs_copy`): the model's next latent
    under the actions it executed against the one observed, over copying; near 1 means the planner
    is picking the model's errors, however well `wm rollout-report` scores it on logged data.
    """
    config = load_evaluation_config(overrides)
    use_threads(config.run.num_threads)
    out_dir = Path(config.run.root) / "eval" / config.eval.name
    check_output_folder(out_dir)  # fail before the (long) evaluation, not after it
    import_evaluation_envs(config)
    for env_id in config.eval.tasks:
        require_registered(env_id)
    console.print(use_world_model(config, config.eval.rows, "eval"), markup=False, highlight=False)
    results = evaluate(config)
    print_eval_table(results, config)
    paths = write_outputs(config, results, out_dir)
    for label, path in paths.items():
        console.print(f"{label}: {', '.join(map(str, path)) if isinstance(path, list) else path}")
    if config.eval.save_episodes:
        ev = config.eval
        files = [str(episode_file(ev.save_episodes, env_id, row)) for env_id in ev.tasks for row in ev.rows]
        console.print(f"episodes: {', '.join(files)} (`wm data info` shows them)")


def check_output_folder(folder: Path) -> None:
    """One line now, and nothing created, if `folder` could not be created or written later."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"cannot create output folder '{folder}': '{existing}' is not a writable folder")


def print_eval_table(results: list, config) -> None:
    table = Table(title=f"zero-shot goal-image success ({split_title(config)}, {config.eval.budget} steps)")
    for column in (
        "task",
        "row",
        "encoder",
        "success (95% CI)",
        "final dist",
        "steps to success",
        "ms/action",
        "planner",
    ):
        table.add_column(column)
    for r in results:
        steps = "-" if r.median_steps_to_success is None else f"{r.median_steps_to_success:.0f}"
        table.add_row(
            r.task.split("/")[-1], r.row, r.encoder,
            f"{r.success_rate:.0%} [{r.ci_low:.0%}, {r.ci_high:.0%}]",
            distance_text(r.mean_final_distance_cm), steps, f"{r.ms_per_action:.0f}", r.planner,
        )  # fmt: skip
    console.print(table)
    checked = [r for r in results if r.forecast_vs_copy is not None]
    if checked:
        ratios = ", ".join(f"{r.task.split('/')[-1]} {r.forecast_vs_copy:.2f}" for r in checked)
        console.print(
            f"forecast check, learned rows (the next latent under the executed actions, model / copy "
            f"L1; near 1 or above: the planner picks the model's errors): {ratios}",
            markup=False,
            highlight=False,
        )
    if any(r.row in ("oracle", "simulator") for r in results):
        console.print(
            f"note: oracle/simulator rows roll candidates through the real simulator with "
            f"{config.eval.sim_samples} samples x {config.eval.sim_iterations} iterations, CEM output "
            f"{config.eval.sim_output} (costly by design)."
        )


def split_title(config: Config) -> str:
    """`heldout split`, or `split —` for envs without visual splits."""
    text = split_text(config.eval.tasks, config.eval.split)
    return f"split {text}" if text.startswith("—") else f"{text} split"


def plan_command(
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    env_id: str = typer.Option("", "--env", help="Env id (default: env.id from the config)."),
    seed: int = typer.Option(
        None, "--seed", help="Reset seed of the episode (scene and goal; default: run.seed, i.e. seed=)."
    ),
    row: str = typer.Option(
        "",
        "--row",
        help="World model: learned (eval.world_model, default <run.root>/ac/<run.name>) | simulator "
        "(eval.encoder + real physics) | oracle (true positions). Default: learned if that world "
        "model exists, else simulator.",
    ),
    goal_image: Path = typer.Option(
        None,
        "--goal-image",
        help="Your own goal picture (PNG/JPG, roughly square; centre-cropped and resized to the env's "
        "image size), planned towards instead of the env's goal. `wm envs goal` writes the env's own. "
        "Not with --row oracle.",
    ),
    video: Path = typer.Option(
        None,
        "--video",
        help="MP4 to write: camera | goal | energy so far. Default: <run.root>/plan/<task>-seed<seed>.mp4.",
    ),
    gif: Path = typer.Option(None, "--gif", help="Also write the same video as a GIF."),
    fps: float = typer.Option(0.0, "--fps", help="Video frame rate (default: the env's control rate)."),
) -> None:
    """Plan towards a goal image for one episode and write a video of it.

    Runs eval.budget receding-horizon steps with the planner plan.* (samples, iterations, horizon;
    simulator/oracle rows use eval.sim_samples x eval.sim_iterations) on the eval.split scenes
    (what `wm envs goal` renders by default) and prints one line per step: the best planned energy
    and the env's task distance; then success, final distance, ms per action. Bare keys mean the
    same as under `wm eval` (encoder=, world_model=, split=).

    Example: wm plan budget=20 --env jepa_wm/Reach-v0 --row simulator --video reach.mp4 --gif reach.gif
    """
    config = load_evaluation_config(overrides)
    use_threads(config.run.num_threads)
    if fps < 0:
        raise UserError(f"option --fps: expected a number > 0, got {fps:g}")
    seed = config.run.seed if seed is None else seed
    env_id = env_id or config.env.id
    if video is None:
        video = Path(config.run.root) / "plan" / f"{env_id.split('/')[-1]}-seed{seed}.mp4"
    import_evaluation_envs(config)
    require_registered(env_id)
    chosen, why = choose_row(config, row, goal_image)
    setup = prepare_episode(config, env_id, seed, chosen, goal_image)  # checks the goal image first
    for out in (video, gif):
        if out is not None:
            writable_output(out)
    for line in (
        why,
        *([f"[plan] {setup.goal.fit}"] if setup.goal is not None else []),
        f"[plan] {env_id} seed={seed} split={setup.env_kwargs.get('split', '—')} row={chosen}: "
        f"{config.eval.budget} steps, goal={'image ' + str(goal_image) if goal_image else 'the env goal'}",
    ):
        console.print(line, markup=False, highlight=False)

    def on_step(step: int, energy: float, distance: float) -> None:
        console.print(
            f"step {step:3d}/{config.eval.budget}  energy {energy:10.4f}  distance {distance_text(100 * distance):>8}",
            markup=False,
            highlight=False,
        )

    episode = run_episode(config, setup, on_step=on_step)
    label = "goal (your image)" if episode.custom_goal else "goal image"
    paths = write_video(
        episode.frames,
        episode.goal,
        episode.energies,
        video,
        fps=fps or episode.fps,
        gif=gif,
        distances=episode.distances,
        goal_label=label,
    )
    if episode.custom_goal:
        note = (
            f"note: your goal image is this episode's own goal (seed {seed}, split "
            f"{setup.env_kwargs.get('split', '-')}): success and distance measure reaching it."
            if episode.goal_is_env_goal
            else "note: planning used your goal image; success and distance are the env's, "
            "judged against its own goal."
        )
        console.print(note, markup=False, highlight=False)
    outputs = "  ".join(f"{kind}: {p}" for kind, p in zip(("video", "gif"), paths, strict=False))
    console.print(
        f"success: {'yes' if episode.success else 'no'}  final distance: {distance_text(100 * episode.final_distance)}  "
        f"ms/action: {episode.ms_per_action:.0f}  {outputs}",
        markup=False,
        highlight=False,
    )


def choose_row(config: Config, row: str, goal_image: Path | None) -> tuple[str, str]:
    """The row `wm plan` runs (--row, else learned when a world model is found, else simulator)
    and the line that says which world model or latent it uses, and why."""
    if row:
        return check_row(row, goal_image), use_world_model(config, [row], "plan") + " (--row)"
    choice = choose_world_model(config)
    if choice.path:
        return check_row("learned", goal_image), use_world_model(config, ["learned"], "plan")
    line = use_world_model(config, ["simulator"], "plan")
    return check_row("simulator", goal_image), f"{line}, because {choice.reason}"
