"""`wm bench latent_screen`: which planning latent sees the object? Screened offline, no planning.

Controlled pairs, so the hand cannot stand in for the cube: in held-out scenes of Push (Grasp and
PickPlace reset to the same scenes), the arm placed where play data puts it, a base frame is
compared with (a) the same scene with only the cube moved 1-15 cm across the table and (b) the
same scene a few play steps later with the cube put back, so only the arm moved. Each candidate
latent's distance (the planner's energy: mean L1 over tokens) is scored by its Spearman
correlation with the cube displacement in (a) and the hand displacement in (b), and by the
balance: latent distance per cm of cube over per cm of hand (a planner weighs the cube against the
hand by that ratio; near 0 it ignores the cube). Candidates: the trained keypoint readout, our
encoder pooled to 1, 2, 4 tokens a side and unpooled (the official energy), a random-init ViT and
raw pixels likewise, and keypoints joined with pooled tokens; at 64 px and 128 px. The readouts
learn only from logged images and actions; the simulator's positions are used here to make and
score the pairs, never to train.
Run: `python -m benchmarks.latent_screen --runs runs` (after `make demo`); writes
benchmarks/results/latent_screen.json and a table in docs/results.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.common import RESULTS_DIR, replace_block, write_timing_result
from envs.policies import make_policy
from envs.registration import make_env
from worldmodel.evaluation.probe import latent_l1
from worldmodel.models.encoders import encode_frames, load_encoder, pixel_encode_fn
from worldmodel.models.vit import VisionTransformer, ViTConfig
from worldmodel.models.world_model import WorldModel

# Push, Grasp and PickPlace reset to the same scenes (the same seeds give the same arm and cube):
# their pairs would be identical, so the screen uses Push's.
ENVS = ("jepa_wm/Push-v0",)
MAX_SHIFT_M = 0.15
START, END = "<!-- LATENT-SCREEN:START -->", "<!-- LATENT-SCREEN:END -->"
Encode = Callable[[torch.Tensor], torch.Tensor]


def shift_cube(env, offset: np.ndarray) -> None:
    """Teleport the cube by `offset` (x, y) in the table plane, at rest."""
    arm = env.unwrapped.arm
    joint = arm.model.joint("cube")
    q, v = joint.qposadr[0], joint.dofadr[0]
    arm.data.qpos[q : q + 2] += offset
    arm.data.qvel[v : v + 6] = 0.0
    arm.set_sim_state(arm.get_sim_state())  # recomputes positions and contacts (mj_forward)


def pairs(env_id: str, scenes: int, image_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Base frames, cube-only and hand-only perturbed frames, and their true displacements (m).

    Scene k: reset with a held-out seed, then 5-25 play steps (the arm where play data puts it);
    the cube-only frame moves the cube 1-15 cm in a random direction (kept on the table, hand and
    fingers untouched); the hand-only frame is the scene after more play steps with the cube put
    back where it was, so only the arm differs."""
    rng = np.random.default_rng(seed)
    env = make_env(env_id, split="heldout", image_size=image_size)
    base, cube_moved, hand_moved, cube_d, hand_d = [], [], [], [], []
    for k in range(scenes):
        obs, info = env.reset(seed=80_000 + k)
        policy = make_policy("play", env, k)
        policy.reset(obs, info)
        for _ in range(rng.integers(5, 26)):
            obs, _, _, _, info = env.step(policy.act(obs, info))
        u = env.unwrapped
        saved, cube0, ee0 = u.get_sim_state(), u.cube_pos(), u.ee_pos()
        base.append(u.arm.render(image_size))
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.01, MAX_SHIFT_M)
        shift_cube(env, dist * np.array([np.cos(angle), np.sin(angle)]))
        cube_moved.append(u.arm.render(image_size))
        cube_d.append(np.linalg.norm(u.cube_pos() - cube0))
        u.set_sim_state(saved)
        for _ in range(rng.integers(2, 12)):
            obs, _, _, _, info = env.step(policy.act(obs, info))
        shift_cube(env, (cube0 - u.cube_pos())[:2])  # the cube back where it was
        hand_moved.append(u.arm.render(image_size))
        hand_d.append(np.linalg.norm(u.ee_pos() - ee0))
    env.close()
    stack = lambda x: torch.from_numpy(np.stack(x))  # noqa: E731
    return {"base": stack(base), "cube": stack(cube_moved), "hand": stack(hand_moved),
            "cube_d": np.array(cube_d), "hand_d": np.array(hand_d)}  # fmt: skip


def scores(encode: Encode, p: dict) -> dict[str, float]:
    """Rank correlations with the cube-only and hand-only displacements, and the cm balance."""
    with torch.no_grad():
        z = {k: torch.cat([encode(x) for x in p[k].split(256)]).float() for k in ("base", "cube", "hand")}
    cube = latent_l1(z["base"], z["cube"]).double().numpy()
    hand = latent_l1(z["base"], z["hand"]).double().numpy()
    moved = p["hand_d"] > 0.005  # scenes where the play steps moved the hand at all
    per_cm_cube = np.median(cube / (100 * p["cube_d"]))
    per_cm_hand = np.median(hand[moved] / (100 * p["hand_d"][moved]))
    return {
        "cube": rank_correlation(cube, p["cube_d"]),
        "hand": rank_correlation(hand[moved], p["hand_d"][moved]),
        "cube_per_hand_cm": float(per_cm_cube / max(per_cm_hand, 1e-12)),
    }


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho; 0 when either side is constant (a latent that does not see the change)."""
    return float(spearmanr(x, y).statistic) if np.ptp(x) > 0 and np.ptp(y) > 0 else 0.0


def vit(encoder: VisionTransformer, pool: int | None) -> Encode:
    return lambda images: encode_frames(encoder, images, pool)


def joined(a: Encode, b: Encode) -> Encode:
    """Two latents side by side in one token, each part weighted so that the joined mean L1 is the
    mean of the two parts' own mean L1 distances."""

    def encode(images: torch.Tensor) -> torch.Tensor:
        parts = [f(images).flatten(1) for f in (a, b)]
        total = sum(part.shape[1] for part in parts)
        return torch.cat([part * total / (2 * part.shape[1]) for part in parts], dim=1)[:, None]

    return encode


def candidates(runs: Path, image_size: int, readouts: tuple[Path, ...] = ()) -> dict[str, Encode]:
    """Name -> encode function at `image_size` (the keypoint readout exists at its trained 64 px
    only). `readouts`: further AC runs whose planning latents are screened beside the demo's."""
    ours, _ = load_encoder(runs / "pretrain" / "tiny")
    torch.manual_seed(0)
    random = VisionTransformer(ViTConfig(img_size=image_size)).eval()
    grid = image_size // 8
    out: dict[str, Encode] = {}
    if image_size == 64 and (runs / "ac" / "tiny").is_dir():
        keypoints = WorldModel.from_run(runs / "ac" / "tiny").encode
        out["keypoints (ours, inverse dynamics)"] = keypoints
        out["keypoints + ours pooled 4x4"] = joined(keypoints, vit(ours, 4))
        for run in readouts:
            out[f"planning latent of {run.name}"] = WorldModel.from_run(run).encode
    for name, encoder in (("ours", ours), ("random ViT", random)):
        for pool in (1, 2, 4):
            out[f"{name} pooled {pool}x{pool}"] = vit(encoder, pool)
        out[f"{name} full {grid}x{grid}"] = vit(encoder, None)
    for pool in (4, grid):
        pixels = pixel_encode_fn(pool)
        out[f"pixels pooled {pool}x{pool}"] = pixels
    return out


def screen(runs: Path, scenes: int, sizes: tuple[int, ...], readouts: tuple[Path, ...] = ()) -> list[dict]:
    rows = []
    for size in sizes:
        encoders = candidates(runs, size, readouts)
        for env_id in ENVS:
            p = pairs(env_id, scenes, size)
            for name, encode in encoders.items():
                start = time.perf_counter()
                row = {"env": env_id.split("/")[-1], "px": size, "latent": name}
                row |= scores(encode, p) | {"encode_s": time.perf_counter() - start}
                print(
                    f"{row['env']:13s} {size:4d}px {name:38s} cube {row['cube']:+.2f}  hand {row['hand']:+.2f}  "
                    f"cube/hand per cm {row['cube_per_hand_cm']:.2f}",
                    flush=True,
                )
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Mean over the screened tasks per (latent, px), the latent that weighs the cube most first."""
    keys = sorted({(r["latent"], r["px"]) for r in rows})
    lines = [
        "| latent | px | rank corr, cube moved alone | rank corr, hand moved alone | cube / hand, latent distance per cm |",
        "|---|---|---|---|---|",
    ]
    summary = []
    for latent, px in keys:
        mine = [r for r in rows if (r["latent"], r["px"]) == (latent, px)]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in ("cube", "hand", "cube_per_hand_cm")}
        summary.append((mean["cube_per_hand_cm"], latent, px, mean))
    for _, latent, px, mean in sorted(summary, reverse=True):
        lines.append(
            f"| {latent} | {px} | {mean['cube']:.2f} | {mean['hand']:.2f} | {mean['cube_per_hand_cm']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="wm bench latent_screen", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="run.root holding pretrain/tiny and ac/tiny"
    )
    parser.add_argument(
        "--scenes", type=int, default=200, help="held-out scenes per task (one pair of each kind)"
    )
    parser.add_argument("--sizes", default="64,128", help="image sizes, comma separated")
    parser.add_argument(
        "--readouts", nargs="*", type=Path, default=[],
        help="more AC runs (e.g. runs/ac/tiny_transport) whose planning latents are screened too, at 64 px",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the docs/results.md table")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    for run in args.readouts:
        if not (run / "config.yaml").is_file():
            raise SystemExit(f"wm bench latent_screen: --readouts {run}: not an AC run (no config.yaml)")
    rows = screen(args.runs, args.scenes, sizes, tuple(args.readouts))
    config = {"runs": str(args.runs), "scenes": args.scenes, "sizes": list(sizes), "max_shift_m": MAX_SHIFT_M,
              "split": "heldout", "envs": list(ENVS), "readouts": [str(r) for r in args.readouts]}  # fmt: skip
    path = write_timing_result("latent_screen", config, {"rows": rows}, args.out)
    if not args.no_docs:
        replace_block(table(rows), START, END, "Which latent sees the object? (offline screen)")
    return path


if __name__ == "__main__":
    main()
