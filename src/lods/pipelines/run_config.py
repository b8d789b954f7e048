"""The configs of an optimisation run (text-to-3D and image-to-3D), their checks, and reading them from a run folder.

`validate()` checks everything a run needs before its folder is created: the options, the scene settings (typed
GaussiansConfig / FieldConfig), the guidance's config and method options, and the loss weights: every `loss_X` the
run's guidance, scene and task return needs its `lambdas.X`, and a `lambdas.X` that names no loss is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ..config import from_dict
from ..errors import ConfigError, UserError
from ..guidance import GUIDANCES, guidance_class
from ..guidance.base import GuidanceConfig
from ..render.cameras import CameraSamplerConfig
from ..runs import RENAMED_KEYS
from ..scenes import field as field_scene
from ..scenes import gaussians as gaussians_scene
from ..scenes.field import FieldConfig
from ..scenes.gaussians import GaussiansConfig
from .reference_image import BACKGROUND_TOLERANCE

BACKBONES = ("gs", "nerf")
MAX_SEED = 10**13  # every step seeds torch with seed * 1_000_003 + step, which must stay below 2**64
PRESETS = ("fast", "paper")
MESH_KINDS = ("vertex", "textured")
BACKGROUNDS = ("white", "black", "random")
# lods before issue 12 named the distillation loss `sds` and the learned branch's loss `prior`
RENAMED_LAMBDAS = {old.split(".", 1)[1]: new.split(".", 1)[1] for old, new in RENAMED_KEYS.items()
                   if old.startswith("lambdas.")}
GUIDANCE_LOSSES = tuple(dict.fromkeys(name for g in GUIDANCES.values() for name in g.loss_names))
IMAGE_LOSSES = ("rgb", "mask")  # image-to-3D's reference view
NO_GUIDANCE = "none"  # image-to-3D only: reconstruction alone


@dataclass
class ExportConfig:
    mesh_resolution: int = 64
    turntable_frames: int = 36
    turntable_size: int = 128
    views_size: int = 64
    eval_views: int = 8
    mesh: str = "vertex"  # "vertex": vertex colours; "textured": UV-unwrapped, baked texture (+ obj, mtl, png)
    mesh_max_faces: int | None = None  # decimate to this face budget (None: keep marching cubes' faces)
    texture_size: int = 512


@dataclass
class GenerateConfig:
    prompt: str = ""
    backbone: str = "gs"
    guidance: str = "lods-embedding"
    prior: str | None = None  # None: the embedded prior
    preset: str = "fast"
    steps: int = 400
    seed: int = 0
    device: str = "cpu"
    out: str = "outputs/run"
    render_size: int = 64
    # progressive resolution: [[step, size], ...] switches the render size at those steps
    resolution_schedule: list = field(default_factory=list)
    background: str = "white"  # "white", "black", or "random" (a random flat colour per view, as threestudio)
    adam_betas: list = field(default_factory=lambda: [0.9, 0.99])  # of the one optimiser (scene + guidance)
    init_ply: str | None = None  # gs: initialise the Gaussians from a point cloud or splat ply (None: the ball)
    init_ply_scale: float = 1.0  # positions (and splat scales) multiplied by this (the reference: 1.6 for Shap-E)
    checkpoint_every: int = 100
    # the weight λ_X of each loss_X: distill (the guidance's distillation loss), learned (its learnable part's
    # loss), the scene's regularisers (sparsity, opacity, anisotropy) and image-to-3D's rgb and mask
    lambdas: dict = field(default_factory=lambda: {"distill": 1.0, "learned": 1.0, "sparsity": 0.0, "opacity": 0.0})
    cameras: CameraSamplerConfig = field(default_factory=CameraSamplerConfig)
    guidance_config: GuidanceConfig = field(default_factory=GuidanceConfig)
    gaussians: dict = field(default_factory=dict)  # GaussiansConfig fields over its defaults
    nerf: dict = field(default_factory=dict)  # FieldConfig fields over its defaults
    export: ExportConfig = field(default_factory=ExportConfig)

    def scene_config(self) -> GaussiansConfig | FieldConfig:
        """The typed config of this run's backbone (a ConfigError for an unknown key or a bad value)."""
        return GaussiansConfig.from_dict(self.gaussians) if self.backbone == "gs" else FieldConfig.from_dict(self.nerf)

    def losses(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the losses this run returns, every loss a λ may name for this task and backbone)."""
        scene = self.scene_config()
        method = () if self.guidance == NO_GUIDANCE else guidance_class(self.guidance).loss_names
        module = gaussians_scene if self.backbone == "gs" else field_scene
        return tuple(method) + scene.loss_names(), GUIDANCE_LOSSES + module.LOSS_NAMES

    def guidances(self) -> tuple[str, ...]:
        return tuple(GUIDANCES)

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UserError("the prompt is empty")
        if self.backbone not in BACKBONES:
            raise UserError(f"unknown backbone {self.backbone!r}; choose one of: {', '.join(BACKBONES)}")
        if self.guidance not in self.guidances():
            raise UserError(f"unknown guidance {self.guidance!r}; choose one of: {', '.join(self.guidances())}")
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.steps <= 0:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if self.render_size < 8 or any(s < 8 for _, s in self.resolution_schedule):
            raise UserError("render sizes must be at least 8 pixels")
        if self.checkpoint_every <= 0:
            raise UserError("checkpoint_every must be positive")
        if self.export.mesh not in MESH_KINDS:
            raise UserError(f"unknown --mesh {self.export.mesh!r}; choose one of: {', '.join(MESH_KINDS)}")
        if self.export.mesh_max_faces is not None and self.export.mesh_max_faces < 4:
            raise UserError(f"--mesh-faces must be at least 4, got {self.export.mesh_max_faces}")
        if self.background not in BACKGROUNDS:
            raise UserError(f"unknown background {self.background!r}; choose white, black or random")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise UserError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if self.init_ply is not None:
            if self.backbone != "gs":
                raise UserError("--init-ply initialises 3D Gaussians; it needs --backbone gs")
            if not Path(self.init_ply).is_file():
                raise UserError(f"--init-ply: no such file: {self.init_ply}")
            if not 0.0 < self.init_ply_scale < float("inf"):
                raise UserError("init_ply_scale must be positive")
        gs = self.guidance_config.guidance_scale
        if gs is not None and not (0 < gs < math.inf):
            raise UserError(f"--cfg must be positive and finite, got {gs}")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise UserError(f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
        try:
            self.cameras.validate()
        except ValueError as e:
            raise UserError(str(e)) from None
        self.guidance_config.validate()
        if self.guidance != NO_GUIDANCE:
            guidance_class(self.guidance).parse_options(self.guidance_config.method_options)
        GaussiansConfig.from_dict(self.gaussians)  # both backbones' settings: a typo in either is an error
        FieldConfig.from_dict(self.nerf)
        check_lambdas(self.lambdas, *self.losses())


def check_lambdas(lambdas: dict, returned: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Every returned loss has its λ; every λ names a known loss and is a finite number >= 0 (ConfigError)."""
    if not isinstance(lambdas, dict):
        raise ConfigError(f"lambdas must be a mapping of loss names to weights, got {lambdas!r}")
    for name, value in lambdas.items():
        if name in RENAMED_LAMBDAS:
            raise ConfigError(f"lambdas.{name} was renamed lambdas.{RENAMED_LAMBDAS[name]}")
        if name not in known:
            raise ConfigError(f"lambdas.{name} names no loss of this run; known: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
            raise ConfigError(f"lambdas.{name} must be a finite number >= 0, got {value!r}")
    missing = [name for name in returned if name not in lambdas]
    if missing:
        raise ConfigError(f"loss_{missing[0]} has no weight: set lambdas.{missing[0]} (e.g. --set lambdas.{missing[0]}=1.0)")


@dataclass
class ImageTo3DConfig(GenerateConfig):
    task: str = "image-to-3d"
    image: str = ""  # the input image, as given
    prompt_source: str = "user"  # "user" (--prompt) or "judge" (the world's classifier named the object)
    background_tolerance: float = BACKGROUND_TOLERANCE
    preprocess: dict = field(default_factory=dict)  # what prepare_reference did (filled in by run_image_to_3d)

    def losses(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        returned, known = super().losses()
        return returned + IMAGE_LOSSES, known + IMAGE_LOSSES

    def guidances(self) -> tuple[str, ...]:
        return (*GUIDANCES, NO_GUIDANCE)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.background_tolerance < 1.0:
            raise UserError("background_tolerance must lie in [0, 1)")


def read_config_file(out: Path) -> dict:
    """The config.yaml of a run folder as a mapping, with the renamed λ of older runs mapped to their new names."""
    path = Path(out) / "config.yaml"
    if not path.exists():
        raise UserError(f"{out} is not a run folder (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a run config (not a mapping)")
    if isinstance(data.get("lambdas"), dict):
        data["lambdas"] = {RENAMED_LAMBDAS.get(k, k): v for k, v in data["lambdas"].items()}
    return data


def load_run_config(out: Path) -> GenerateConfig:
    """The config of a run folder: an ImageTo3DConfig for `lods image-to-3d`'s, else a GenerateConfig; a missing,
    malformed or foreign one is a UserError."""
    data = read_config_file(out)
    cls = ImageTo3DConfig if data.get("task") == "image-to-3d" else GenerateConfig
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as e:
        raise UserError(f"{Path(out) / 'config.yaml'} is not a run config ({str(e).splitlines()[0][:160]})") from None
