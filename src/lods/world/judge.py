"""The judge: a small CNN that reads a world render back into its caption (the world's stand-in for CLIP).

Heads: category, the first object's shape and colour, the second object's shape and colour (multi only), the
context (none or one of CONTEXTS) and the canonical relation (multi only). "First" follows `Scene.canonical()`:
the left object of a side-by-side pair (left as seen from the front view), the top object of a stack.
Inputs are RGB images in [0, 1] on a white background, (B, 3, H, W); other sizes are resized to 32².
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..utils.io import atomic_write_json, load_checkpoint, save_checkpoint
from .scene import CATEGORIES, PromptError, Scene, parse_prompt
from .shapes import COLORS, CONTEXTS, SHAPES

SIZE = 32
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "judge"
WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "config.json"

# Class lists of each head; the order is part of the saved weights.
HEAD_CLASSES: dict[str, tuple[str, ...]] = {
    "category": tuple(CATEGORIES),
    "shape1": tuple(SHAPES),
    "color1": tuple(COLORS),
    "shape2": tuple(SHAPES),
    "color2": tuple(COLORS),
    "context": ("none",) + tuple(CONTEXTS),
    "relation": ("to the left of", "on top of"),
}
MULTI_HEADS = ("shape2", "color2", "relation")  # trained and scored only on two-object scenes


@dataclass
class JudgeArch:
    widths: tuple[int, ...] = (24, 48, 96)  # channels of the three stages (32², 16², 8²)
    hidden: int = 128  # penultimate feature size

    def __post_init__(self):
        self.widths = tuple(self.widths)


def scene_targets(scene: Scene) -> dict[str, int]:
    """Class index per head for a scene (canonicalised); heads that do not apply get -1 (ignored)."""
    s = scene.canonical()
    a = s.objects[0]
    t = {
        "category": HEAD_CLASSES["category"].index(s.category),
        "shape1": HEAD_CLASSES["shape1"].index(a.shape),
        "color1": HEAD_CLASSES["color1"].index(a.color),
        "context": HEAD_CLASSES["context"].index(s.context or "none"),
        "shape2": -1,
        "color2": -1,
        "relation": -1,
    }
    if len(s.objects) == 2:
        b = s.objects[1]
        t["shape2"] = HEAD_CLASSES["shape2"].index(b.shape)
        t["color2"] = HEAD_CLASSES["color2"].index(b.color)
        t["relation"] = HEAD_CLASSES["relation"].index(s.relation)
    return t


def prompt_heads(scene: Scene) -> dict[str, int]:
    """The heads a caption names, with their classes: category, first object, then context or relation and second object."""
    t = scene_targets(scene)
    heads = ["category", "shape1", "color1"]
    if scene.category == "surroundings":
        heads.append("context")
    elif scene.category == "multi":
        heads += ["relation", "shape2", "color2"]
    return {h: t[h] for h in heads}


def parse_world_prompt(prompt: str) -> Scene:
    """The canonical scene of a world caption (the view suffix is dropped); UserError if it is none."""
    try:
        scene, _ = parse_prompt(prompt)
    except PromptError as e:
        raise UserError(f"{e}; the judge reads only captions of the world, e.g. 'a red cube' or "
                        "'a red cube to the left of a blue sphere'") from None
    return scene.canonical()


def resize_to_judge(images01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, 3, 32, 32): area averaging to shrink, bilinear to grow."""
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(images01.shape)}")
    h, w = images01.shape[-2:]
    if (h, w) == (SIZE, SIZE):
        return images01
    if h >= SIZE and w >= SIZE:
        return F.interpolate(images01, size=(SIZE, SIZE), mode="area")
    return F.interpolate(images01, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class JudgeNet(nn.Module):
    """Three conv stages (one conv at 32², two at 16² and 8²), a flattened 4² map (keeps left/right) and linear heads."""

    def __init__(self, arch: JudgeArch = JudgeArch()):
        super().__init__()
        self.arch = arch
        w1, w2, w3 = arch.widths
        self.body = nn.Sequential(
            _conv(3, w1), nn.MaxPool2d(2),
            _conv(w1, w2), _conv(w2, w2), nn.MaxPool2d(2),
            _conv(w2, w3), _conv(w3, w3), nn.MaxPool2d(2),
        )
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(w3 * 16, arch.hidden), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(arch.hidden, len(c)) for name, c in HEAD_CLASSES.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of normalised 32² inputs (x in [-1, 1])."""
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {name: head(f) for name, head in self.heads.items()}


class Judge:
    """A trained JudgeNet in eval mode, with the scoring functions the evaluation uses."""

    def __init__(self, net: JudgeNet, meta: dict | None = None):
        self.net = net.eval()
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str | Path | None = None, device: torch.device | str | None = None) -> "Judge":
        """Load from a folder holding judge.safetensors and config.json (default: the shipped judge)."""
        folder = Path(path) if path is not None else DEFAULT_DIR
        weights = folder / WEIGHTS_NAME if folder.is_dir() or not folder.suffix else folder
        config = weights.with_name(CONFIG_NAME)
        if not weights.exists() or not config.exists():
            raise UserError(f"no judge at {folder} (expected {WEIGHTS_NAME} and {CONFIG_NAME}); train one with "
                            "`python -m lods.pipelines.train_judge`")
        try:
            meta = json.loads(config.read_text())
            heads = {k: tuple(v) for k, v in meta["heads"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{config} is not a judge config (malformed JSON or no heads)") from None
        if heads != HEAD_CLASSES:
            raise UserError(f"the judge at {folder} was trained with other classes than this version of lods knows")
        net = JudgeNet(JudgeArch(**meta["arch"]))
        tensors, _ = load_checkpoint(weights)
        net.load_state_dict(tensors)
        return cls(net.to(device) if device is not None else net, meta)

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write judge.safetensors and config.json (architecture, classes, `extra`) atomically."""
        folder = Path(folder)
        arch = asdict(self.arch)
        meta = {"arch": arch, "heads": {k: list(v) for k, v in HEAD_CLASSES.items()}, **(extra or {})}
        save_checkpoint(folder / WEIGHTS_NAME, self.net.state_dict(), {"arch": arch})
        atomic_write_json(folder / CONFIG_NAME, meta)
        self.meta = meta

    @property
    def arch(self) -> JudgeArch:
        return self.net.arch

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _inputs(self, images01: torch.Tensor) -> torch.Tensor:
        x = resize_to_judge(images01.to(self.device, torch.float32))
        return x.clamp(0, 1) * 2 - 1

    @torch.no_grad()
    def logits(self, images01: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(self._inputs(images01))

    @torch.no_grad()
    def predict(self, images01: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-head class probabilities, {head: (B, n_classes)} in HEAD_CLASSES order."""
        return {k: v.softmax(-1) for k, v in self.logits(images01).items()}

    @torch.no_grad()
    def features(self, images01: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, hidden), for feature similarity between images."""
        return self.net.features(self._inputs(images01))

    @torch.no_grad()
    def prompt_log_likelihood(self, images01: torch.Tensor, prompts: list[str] | str) -> torch.Tensor:
        """(B, P): for each image and prompt, the sum of the log-probabilities of the attributes the prompt names."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        logp = {k: v.log_softmax(-1) for k, v in self.logits(images01).items()}
        cols = []
        for p in prompts:
            named = prompt_heads(parse_world_prompt(p))
            cols.append(sum(logp[h][:, c] for h, c in named.items()))
        return torch.stack(cols, 1)

    @torch.no_grad()
    def recognizes(self, images01: torch.Tensor, prompt: str) -> torch.Tensor:
        """(B,) bool: the argmax of the category and of every attribute the prompt names matches the prompt."""
        named = prompt_heads(parse_world_prompt(prompt))
        logits = self.logits(images01)
        ok = torch.ones(images01.shape[0], dtype=torch.bool, device=self.device)
        for h, c in named.items():
            ok &= logits[h].argmax(-1) == c
        return ok

    @torch.no_grad()
    def r_at_1(self, images01: torch.Tensor, prompt: str, suite_prompts: list[str]) -> float:
        """Fraction of images whose best-scoring prompt among the suite (plus `prompt`) is `prompt`.

        Prompts are compared in canonical form, so "b to the right of a" and "a to the left of b" are one prompt.
        """
        target = parse_world_prompt(prompt).caption()
        suite = list(dict.fromkeys([target] + [parse_world_prompt(p).caption() for p in suite_prompts]))
        scores = self.prompt_log_likelihood(images01, suite)
        return (scores.argmax(1) == 0).float().mean().item()
