"""The optimisation loop: its hooks, the loss wiring (loss_X × lambdas.X, strict), configs checked before the folder."""

import pytest
import torch

from lods.errors import ConfigError, UserError
from lods.pipelines import loop
from lods.pipelines.presets import preset_config
from lods.pipelines.run_config import ExportConfig
from lods.pipelines.image_to_3d import image_preset_config
from lods.pipelines.loop import LoopHooks, run_loop, weighted_total
from lods.pipelines.run_config import GenerateConfig
from lods.pipelines.step_log import StepLog
from lods.priors.tiny_sd import build_tiny_world_prior
from lods.render.cameras import CameraSamplerConfig


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("prior") / "world"))


def tiny_config(prior_folder, out, backbone="gs", guidance="lods-embedding", steps=3) -> GenerateConfig:
    cfg = preset_config("fast", backbone, guidance)
    cfg.prompt, cfg.prior, cfg.out, cfg.steps = "a red cube", prior_folder, str(out), steps
    cfg.render_size, cfg.checkpoint_every = 16, 2
    cfg.cameras = CameraSamplerConfig(views_per_step=2)
    cfg.gaussians = {"num_points": 100}
    cfg.export = ExportConfig(mesh_resolution=8, turntable_frames=1, turntable_size=8, views_size=8, eval_views=2)
    return cfg


def test_weighted_total_is_the_lambda_sum_and_needs_every_lambda():
    terms = {"loss_distill": torch.tensor(2.0), "loss_sparsity": torch.tensor(5.0)}
    assert weighted_total(terms, {"loss_distill": 3.0, "loss_sparsity": 0.0}).item() == 6.0
    with pytest.raises(ConfigError, match="loss_sparsity has no weight: set lambdas.sparsity"):
        weighted_total(terms, {"loss_distill": 1.0})


class Spy(LoopHooks):
    def __init__(self):
        self.calls = []

    def start(self, cfg, out, resume):
        self.calls.append(("start", resume, (out / "config.yaml").exists()))

    def step(self, cfg, scene, guidance, cams, size, step):
        self.calls.append(("step", step, size, len(cams)))
        return super().step(cfg, scene, guidance, cams, size, step)

    def metrics(self, cfg, scene, prior):
        self.calls.append(("metrics", torch.is_grad_enabled(), scene.training))
        return {"spy": True}


def test_hooks_and_the_weights_the_optimiser_sees(prior_folder, tmp_path, monkeypatch):
    cfg = tiny_config(prior_folder, tmp_path / "run")
    cfg.resolution_schedule = [[2, 24]]
    cfg.lambdas = {"distill": 2.0, "learned": 0.5, "sparsity": 3.0, "opacity": 0.0}
    seen = []
    add = StepLog.add

    def spy_add(self, step, terms, total, force=False):
        seen.append((step, {k: v.item() for k, v in terms.items()}, total.item()))
        return add(self, step, terms, total, force)

    monkeypatch.setattr(StepLog, "add", spy_add)
    hooks = Spy()
    metrics = run_loop(cfg, hooks)
    assert hooks.calls == [("start", False, True), ("step", 0, 16, 2), ("step", 1, 16, 2), ("step", 2, 24, 2),
                           ("metrics", False, False)]
    assert metrics["spy"] is True
    assert [s for s, _, _ in seen] == [1, 2, 3]
    for _, terms, total in seen:  # every term the guidance and the scene return, weighed by its own lambda
        assert list(terms) == ["loss_distill", "loss_learned", "loss_sparsity"]
        assert total == pytest.approx(sum(cfg.lambdas[k.removeprefix("loss_")] * v for k, v in terms.items()), rel=1e-6)


@pytest.mark.parametrize("change,match", [
    (lambda c: c.gaussians.update(reg_anisotropy=True), "loss_anisotropy has no weight: set lambdas.anisotropy"),
    (lambda c: c.lambdas.pop("learned"), "loss_learned has no weight: set lambdas.learned"),
    (lambda c: c.lambdas.update(sparsty=1.0), "lambdas.sparsty names no loss"),
    (lambda c: c.lambdas.update(rgb=1.0), "lambdas.rgb names no loss"),  # image-to-3D's, not text-to-3D's
    (lambda c: c.lambdas.update(sds=1.0), "lambdas.sds was renamed lambdas.distill"),
    (lambda c: c.lambdas.update(distill=float("nan")), "lambdas.distill must be a finite number"),
    (lambda c: c.gaussians.update(backend="gpu"), "gaussians.backend must be one of auto, torch, gsplat"),
    (lambda c: c.gaussians.update(num_pointz=3), "unknown GaussiansConfig key.*gaussians.num_pointz"),
    (lambda c: c.gaussians.update(num_points="many"), "gaussians.num_points: expected an integer"),
    (lambda c: c.nerf.update(encoding="mlp"), "nerf.encoding must be one of"),  # the other backbone's too
    (lambda c: c.guidance_config.method_options.update(x=1), "unknown LODSEmbeddingOptions key.*x; known: time_offset"),
    (lambda c: c.guidance_config.method_options.update(time_offset="yes"), "time_offset: expected true or false"),
    (lambda c: (setattr(c, "guidance", "csd"), c.guidance_config.method_options.update(x=1)), "has no method options"),
])
def test_a_bad_nested_config_fails_before_the_folder(prior_folder, tmp_path, change, match):
    cfg = tiny_config(prior_folder, tmp_path / "run")
    change(cfg)
    with pytest.raises(ConfigError if "method options" not in match else UserError, match=match):
        run_loop(cfg, LoopHooks())
    assert not (tmp_path / "run").exists()


def test_image_to_3d_weights_its_reconstruction_losses():
    cfg = image_preset_config("fast", "nerf", "none")
    cfg.prompt = "a red cube"
    returned, known = cfg.losses()
    assert set(returned) == {"sparsity", "opacity", "rgb", "mask"} and {"rgb", "mask", "distill"} <= set(known)
    cfg.validate()
    del cfg.lambdas["mask"]
    with pytest.raises(ConfigError, match="lambdas.mask"):
        cfg.validate()


def test_old_lambda_names_resume(prior_folder, tmp_path):
    """A run folder written before the rename (lambdas sds / prior, loss_sds in its history) still resumes."""
    out = tmp_path / "run"
    cfg = tiny_config(prior_folder, out, steps=2)
    run_loop(cfg, LoopHooks())
    for name in ("config.yaml", "run.json"):
        path = out / name
        path.write_text(path.read_text().replace("distill", "sds").replace("lambdas.learned", "lambdas.prior")
                        .replace("learned: ", "prior: "))
    assert "sds" in (out / "config.yaml").read_text()
    old = loop.load_run_config(out)
    assert old.lambdas["distill"] == 1.0 and old.lambdas["learned"] == 1.0 and "sds" not in old.lambdas
    old.steps = 3
    metrics = run_loop(old, LoopHooks(), resume=True)
    assert metrics["resumed_from_step"] == 2 and "loss_distill" in metrics["final_losses"]


def test_a_setting_added_since_the_run_was_recorded_resumes_at_its_default(prior_folder, tmp_path):
    """A folder recorded before `learned_draws` existed resumes; setting it to another value is refused."""
    import json

    out = tmp_path / "run"
    run_loop(tiny_config(prior_folder, out, steps=2), LoopHooks())
    record = json.loads((out / "run.json").read_text())
    del record["config"]["guidance_config.learned_draws"]
    (out / "run.json").write_text(json.dumps(record))
    (out / "config.yaml").write_text("".join(line for line in (out / "config.yaml").read_text().splitlines(True)
                                             if "learned_draws" not in line))
    changed = loop.load_run_config(out)
    changed.steps, changed.guidance_config.learned_draws = 3, 2
    with pytest.raises(UserError, match="learned_draws"):
        run_loop(changed, LoopHooks(), resume=True)
    old = loop.load_run_config(out)
    old.steps = 3
    assert run_loop(old, LoopHooks(), resume=True)["resumed_from_step"] == 2
