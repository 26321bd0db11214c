"""`wm import` end to end: small checkpoints in the official and Hugging Face layouts become run
folders that `wm cache` -> `wm train` -> `wm plan` take; the README's recipe runs as written on
stand-ins under the released files' names; bad input is one line and writes nothing."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import REPO_ROOT, TINY_AC
from tests.worldmodel.models.test_checkpoints import _Touch, official_checkpoint, tiny_encoder
from tests.worldmodel.models.test_encoder_import import save_hf
from worldmodel.models.ac_import import ACTION_CONVENTION, STATE_CONVENTION
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import load_safetensors
from worldmodel.models.encoder_import import import_encoder
from worldmodel.models.vit import VisionTransformer, ViTConfig
from worldmodel.models.world_model import WorldModel

TINY_PLAN = ["eval.budget=2", "plan.samples=8", "plan.iterations=1"]
TINY_TRAIN = [*TINY_AC, "max_steps=3", "batch_size=4"]
RECIPE_HEADING = "**Use the released V-JEPA 2 weights.**"


def ac_checkpoint(path: Path, action_dim: int = 7, mutate: Callable[[dict], None] | None = None) -> None:
    """A small `vjepa2-ac-vitg.pt`: its encoder under `encoder` (patch 16, as the released ViT-g) and
    the predictor under `predictor` (head dim 64, as released), both behind wrapper prefixes."""
    torch.manual_seed(3)
    encoder = VisionTransformer(ViTConfig.preset("tiny", depth=1, patch_size=16))
    cfg = ACPredictorConfig(embed_dim=192, width=64, depth=1, num_heads=1, action_dim=action_dim)
    predictor = {f"module.{k}": v for k, v in ACPredictor(cfg).state_dict().items()}
    if mutate:
        mutate(predictor)
    encoder_state = {f"module.backbone.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"encoder": encoder_state, "predictor": predictor, "epoch": 1}, path)


def stand_ins(folder: Path) -> None:
    """The released files of the README recipe, tiny: vitl.pt (official), vjepa2-vitl-fpc64-256/
    (a Hugging Face download) and vjepa2-ac-vitg.pt (V-JEPA 2-AC)."""
    official_checkpoint(folder / "vitl.pt", tiny_encoder(0, depth=1), tiny_encoder(1, depth=1))
    save_hf(folder / "vjepa2-vitl-fpc64-256")
    ac_checkpoint(folder / "vjepa2-ac-vitg.pt")


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("layout", ["official", "hugging-face"])
def test_import_then_cache_train_and_plan(wm, tiny_dataset, tmp_path, layout) -> None:
    stand_ins(tmp_path)
    source = tmp_path / ("vitl.pt" if layout == "official" else "vjepa2-vitl-fpc64-256")
    encoder = tmp_path / "runs" / "pretrain" / "imported"
    result = wm("import", "encoder", source, encoder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"encoder: {encoder / 'encoder.safetensors'} (")
    assert f"encoder={encoder}" in result.stdout.splitlines()[-1]
    stage2 = [
        f"data={tiny_dataset}",
        f"encoder={encoder}",
        f"cache={tmp_path / 'emb.h5'}",
        f"run.root={tmp_path}",
    ]
    result = wm("cache", *stage2, *TINY_AC)
    assert result.returncode == 0, result.stderr
    result = wm("train", *stage2, *TINY_TRAIN, "run.name=imported")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "ac" / "imported"
    assert WorldModel.from_run(run).metadata["encoder"] == str((encoder / "encoder.safetensors").resolve())
    video = tmp_path / "plan.mp4"
    result = wm("plan", *TINY_PLAN, f"world_model={run}", "--env", "jepa_wm/Reach-v0", "--video", video)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"[plan] world model {run} for row learned")
    assert "success:" in result.stdout.splitlines()[-1] and video.stat().st_size > 1000


def test_imported_ac_predictor_keeps_the_full_token_grid_and_plans(wm, tmp_path) -> None:
    ac_checkpoint(tmp_path / "vjepa2-ac-vitg.pt")
    encoder, run = tmp_path / "enc", tmp_path / "ac"
    assert wm("import", "encoder", tmp_path / "vjepa2-ac-vitg.pt", encoder).returncode == 0
    result = wm("import", "predictor", tmp_path / "vjepa2-ac-vitg.pt", run, "--encoder", encoder)
    assert result.returncode == 0, result.stderr
    assert ACTION_CONVENTION in result.stdout and STATE_CONVENTION in result.stdout
    assert result.stdout.splitlines()[-1] == f"plan with it: wm plan world_model={run}  (on 256x256 frames)"
    model = WorldModel.from_run(run)  # the official grid: every token of a 256 px frame, 16x16
    assert (model.predictor.cfg.grid_h, model.latent_pool, model.state_update) == (16, None, "compose")
    assert load_safetensors(run / "predictor.safetensors")[1]["latent_pool"] == "16"
    frames = torch.randint(0, 255, (2, 256, 256, 3), dtype=torch.uint8)
    z = model.encode(frames)
    assert z.shape == (2, 256, 192)
    assert model.rollout(z, torch.zeros(2, 7), torch.zeros(2, 3, 7)).shape == (2, 3, 256, 192)
    # The arm envs render at env.image_size: the official 16x16 grid plans through `wm plan` too.
    video = tmp_path / "ac256.mp4"
    args = ("plan", *TINY_PLAN, "plan.horizon=1", f"world_model={run}", "env.image_size=256")
    result = wm(*args, "--env", "jepa_wm/Reach-v0", "--video", video)
    assert result.returncode == 0, result.stderr
    assert "success:" in result.stdout.splitlines()[-1] and video.exists()

    small = tmp_path / "ac64"  # the arm envs render 64 px: all 4x4 tokens of those frames
    ac = tmp_path / "vjepa2-ac-vitg.pt"
    result = wm("import", "predictor", ac, small, "--encoder", encoder, "--img-size", "64")
    assert result.returncode == 0, result.stderr
    assert WorldModel.from_run(small).predictor.cfg.grid_h == 4
    video = tmp_path / "ac.mp4"
    result = wm("plan", *TINY_PLAN, f"world_model={small}", "--env", "jepa_wm/Reach-v0", "--video", video)
    assert result.returncode == 0, result.stderr
    assert "success:" in result.stdout.splitlines()[-1]
    line = one_line_error(
        wm("import", "predictor", ac, tmp_path / "x", "--encoder", encoder, "--img-size", "60")
    )
    assert "option --img-size: expected a multiple of the encoder's patch 16" in line


def readme_recipe() -> list[list[str]]:
    """The commands of the README's released-weights recipe (its `sh` block)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split(RECIPE_HEADING, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_the_readme_recipe_runs_as_written_on_stand_ins(wm, tiny_dataset, tmp_path) -> None:
    commands = readme_recipe()
    verbs = [argv[1:3] for argv in commands]
    assert ["import", "encoder"] in verbs and ["import", "predictor"] in verbs
    assert {"cache", "train", "plan"} <= {argv[1] for argv in commands}
    stand_ins(tmp_path)
    (tmp_path / "datasets").mkdir()
    shutil.copy(tiny_dataset, tmp_path / "datasets" / "mine.h5")
    tiny = {"cache": TINY_AC, "train": TINY_TRAIN, "plan": TINY_PLAN}
    for argv in commands:
        assert argv[0] == "wm", argv
        result = wm(*argv[1:], *tiny.get(argv[1], []), cwd=tmp_path)
        assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stdout}\n{result.stderr}"


# ------------------------------------------------------------------------------ bad input


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def encoder_case(name: str, tmp: Path) -> tuple[list[str], list[str]]:
    """(the `wm import encoder` source arguments, words its one error line must hold)."""
    pt = tmp / "vitl.pt"
    if name == "another-architecture":
        resnet = {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}
        torch.save({"target_encoder": resnet}, pt)
        return [str(pt)], ["not a V-JEPA 2 encoder", "patch_embed.proj.weight"]
    if name == "another-architecture-hf":
        save_hf(tmp / "hf")
        config = json.loads((tmp / "hf" / "config.json").read_text()) | {"model_type": "videomae"}
        (tmp / "hf" / "config.json").write_text(json.dumps(config))
        return [str(tmp / "hf")], ["'videomae', not 'vjepa2'"]
    if name == "truncated-pt":
        official_checkpoint(pt, tiny_encoder(depth=1), tiny_encoder(depth=1))
        truncated(pt)
        return [str(pt)], ["vitl.pt", "not a PyTorch checkpoint"]
    if name == "truncated-safetensors":
        save_hf(tmp / "hf")
        truncated(tmp / "hf" / "model.safetensors")
        return [str(tmp / "hf")], ["model.safetensors", "not a readable safetensors file"]
    if name == "wrong-keys":
        state = {f"module.backbone.{k}": v for k, v in tiny_encoder(depth=1).state_dict().items()}
        del state["module.backbone.blocks.0.norm2.weight"]
        state["module.backbone.blocks.0.attn.q_norm.weight"] = torch.ones(64)
        torch.save({"target_encoder": state}, pt)
        return [str(pt)], [
            "missing keys: blocks.0.norm2.weight",
            "unexpected keys: blocks.0.attn.q_norm.weight",
        ]
    if name == "wrong-hf-keys":
        save_hf(tmp / "hf")
        state, meta = load_safetensors(tmp / "hf" / "model.safetensors")
        del state["encoder.layer.1.attention.value.weight"]
        save_file(state, str(tmp / "hf" / "model.safetensors"), meta)
        return [str(tmp / "hf")], ["missing keys: blocks.1.attn.qkv.weight", "attention.query.weight"]
    if name == "code-in-pickle":
        torch.save({"target_encoder": {"x": _Touch(tmp / "pwned")}}, pt)
        return [str(pt)], ["vitl.pt", "refused", "code execution", "weights_only=True"]
    if name == "no-encoder-entry":
        torch.save({"opt": {"lr": 1.0}, "epoch": 3}, pt)
        return [str(pt)], ["no encoder weights", "'target_encoder' or 'encoder'", "opt, epoch"]
    if name == "folder-without-weights":
        (tmp / "empty").mkdir()
        return [str(tmp / "empty")], ["not a Hugging Face V-JEPA 2 download", "config.json"]
    if name == "missing-file":
        return [str(tmp / "nope.pt")], ["nope.pt", "does not exist"]
    raise AssertionError(name)


ENCODER_CASES = [
    "another-architecture",
    "another-architecture-hf",
    "truncated-pt",
    "truncated-safetensors",
    "wrong-keys",
    "wrong-hf-keys",
    "code-in-pickle",
    "no-encoder-entry",
    "folder-without-weights",
    "missing-file",
]


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_bad_encoder_checkpoint_is_one_line_and_writes_nothing(wm, tmp_path, case) -> None:
    source, words = encoder_case(case, tmp_path)
    out = tmp_path / "runs" / "pretrain" / "imported"
    line = one_line_error(wm("import", "encoder", *source, out))
    for word in words:
        assert word in line, line
    assert not (tmp_path / "runs").exists() and not temp_files(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_an_existing_encoder_is_kept_unless_forced(wm, tmp_path) -> None:
    stand_ins(tmp_path)
    out = tmp_path / "enc"
    assert wm("import", "encoder", tmp_path / "vitl.pt", out).returncode == 0
    before = (out / "encoder.safetensors").read_bytes()
    line = one_line_error(wm("import", "encoder", tmp_path / "vjepa2-vitl-fpc64-256", out))
    assert "already exists: pass --force" in line and (out / "encoder.safetensors").read_bytes() == before
    result = wm("import", "encoder", tmp_path / "vjepa2-vitl-fpc64-256", out, "--force")
    assert result.returncode == 0 and (out / "encoder.safetensors").read_bytes() != before
    line = one_line_error(wm("import", "encoder", tmp_path / "vitl.pt", tmp_path / "vitl.pt"))
    assert "is a file, expected a folder" in line


def predictor_case(name: str, tmp: Path) -> tuple[list[str], list[str]]:
    """(the `wm import predictor` arguments after the command, words its error line must hold)."""
    ac = tmp / "vjepa2-ac-vitg.pt"
    ac_checkpoint(ac)
    encoder = tmp / "enc"
    import_encoder(ac, encoder)
    if name == "six-d-actions":
        ac_checkpoint(ac, action_dim=6)
        return [str(ac), "--encoder", str(encoder)], [
            "6-D actions",
            "7-D end-effector deltas",
            "7-D end-effector state",
        ]
    if name == "encoder-of-another-width":
        save_hf(tmp / "hf")
        import_encoder(tmp / "hf", tmp / "enc64")
        return [str(ac), "--encoder", str(tmp / "enc64")], ["192-wide encoder tokens", "is 64 wide"]
    if name == "encoder-missing":
        return [str(ac), "--encoder", str(tmp / "nothing")], ["--encoder", "wm import encoder"]
    if name == "truncated":
        truncated(ac)
        return [str(ac), "--encoder", str(encoder)], ["cannot read as a torch checkpoint"]
    if name == "code-in-pickle":
        torch.save({"predictor": {"x": _Touch(tmp / "pwned")}}, ac)
        return [str(ac), "--encoder", str(encoder)], ["refused", "code execution"]
    if name == "wrong-keys":
        ac_checkpoint(ac, mutate=lambda state: state.pop("module.predictor_proj.bias"))
        return [str(ac), "--encoder", str(encoder)], ["missing keys: predictor_proj.bias"]
    if name == "encoder-checkpoint-given":
        official_checkpoint(tmp / "vitl.pt", tiny_encoder(depth=1), tiny_encoder(depth=1))
        return [str(tmp / "vitl.pt"), "--encoder", str(encoder)], ["no 'predictor' entry"]
    raise AssertionError(name)


PREDICTOR_CASES = [
    "six-d-actions",
    "encoder-of-another-width",
    "encoder-missing",
    "truncated",
    "code-in-pickle",
    "wrong-keys",
    "encoder-checkpoint-given",
]


@pytest.mark.parametrize("case", PREDICTOR_CASES)
def test_bad_predictor_checkpoint_is_one_line_and_writes_nothing(wm, tmp_path, case) -> None:
    arguments, words = predictor_case(case, tmp_path)
    out = tmp_path / "runs" / "ac" / "imported"
    line = one_line_error(wm("import", "predictor", arguments[0], out, *arguments[1:]))
    for word in words:
        assert word in line, line
    assert not (tmp_path / "runs").exists() and not temp_files(tmp_path)
    assert not (tmp_path / "pwned").exists()
