"""The text-to-3D loop: outputs, exact resume after a kill, and bad input."""

import json

import plyfile
import pytest
import torch
import trimesh

from lods.errors import UserError
from lods.pipelines.presets import preset_config
from lods.pipelines.run_config import ExportConfig, GenerateConfig
from lods.pipelines.text_to_3d import run_generate
from lods.priors.tiny_sd import build_tiny_world_prior
from lods.render.cameras import CameraSamplerConfig
from lods.utils.io import load_checkpoint


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("prior") / "world"))


def tiny_config(prior_folder, out, backbone="gs", guidance="lods-embedding", steps=4) -> GenerateConfig:
    cfg = preset_config("fast", backbone, guidance)
    cfg.prompt = "a red cube"
    cfg.prior = prior_folder
    cfg.out = str(out)
    cfg.steps = steps
    cfg.render_size = 16
    cfg.checkpoint_every = 2
    cfg.cameras = CameraSamplerConfig(views_per_step=2)
    cfg.gaussians = {"num_points": 200}
    cfg.export = ExportConfig(mesh_resolution=16, turntable_frames=2, turntable_size=16, views_size=16, eval_views=4)
    return cfg


class Killed(Exception):
    pass


@pytest.mark.parametrize("backbone", ["gs", "nerf"])
def test_outputs_of_a_run(prior_folder, tmp_path, backbone):
    cfg = tiny_config(prior_folder, tmp_path / "run", backbone=backbone)
    metrics = run_generate(cfg)
    out = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "views.png", "checkpoints/last.safetensors"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 4 and len(saved["history"]) == 4
    assert set(saved["final_losses"]) >= {"loss_distill", "loss_learned"}
    assert "ground_truth" in saved and len(saved["ground_truth"]["per_view"]["psnr"]) == 4
    fit = saved["learned_fit"]  # LODS: its learned branch's fit to the renders is reported
    assert fit["learned_loss"] > 0 and fit["clean_reference_loss"] > 0 and fit["fits"] == (fit["fit_ratio"] <= 1.5)
    assert (out / metrics["outputs"]["turntable"]).exists()
    if backbone == "gs":
        ply = plyfile.PlyData.read(str(out / "model.ply"))
        names = {p.name for p in ply["vertex"].properties}
        assert {"x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"} <= names
    assert metrics["outputs"]["mesh"] == "mesh.glb"  # both backbones export their isosurface
    mesh = trimesh.load(out / "mesh.glb", force="mesh")
    assert len(mesh.vertices) > 0


@pytest.mark.parametrize("backbone,guidance", [("gs", "lods-embedding"), ("nerf", "sds")])
def test_resume_after_kill_equals_uninterrupted(prior_folder, tmp_path, backbone, guidance):
    whole = tiny_config(prior_folder, tmp_path / "whole", backbone, guidance, steps=5)
    run_generate(whole)

    cut = tiny_config(prior_folder, tmp_path / "cut", backbone, guidance, steps=5)

    def kill_at_3(step, total, logs):  # after the checkpoint at step 2, before the one at 4
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run_generate(cut, progress=kill_at_3)
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")[1]["step"] == 2
    run_generate(cut, resume=True)

    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    b, meta = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 5
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_existing_run_is_not_overwritten(prior_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run"):
        run_generate(tiny_config(prior_folder, out))
    assert (out / "metrics.json").read_text() == "{}"


@pytest.mark.parametrize(
    "change,match",
    [
        ({"prompt": ""}, "empty"),
        ({"prompt": "a red dragon"}, "dragon"),
        ({"steps": 0}, "steps"),
        ({"guidance": "nope"}, "unknown guidance"),
        ({"backbone": "mesh"}, "unknown backbone"),
    ],
)
def test_bad_input_writes_nothing(prior_folder, tmp_path, change, match):
    cfg = tiny_config(prior_folder, tmp_path / "run")
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(UserError, match=match):
        run_generate(cfg)
    assert not (tmp_path / "run").exists()


def test_bad_cfg_scale(prior_folder, tmp_path):
    cfg = tiny_config(prior_folder, tmp_path / "run")
    cfg.guidance_config.guidance_scale = 0.0
    with pytest.raises(UserError, match="cfg"):
        run_generate(cfg)
    assert not (tmp_path / "run").exists()
