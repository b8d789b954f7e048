"""A frozen 2D diffusion prior read from any folder (or cached hub id) in the Stable Diffusion layout.

Stable Diffusion (latent space, with a VAE) and the embedded prior (pixel space, no VAE) load through the same
code. The prior answers: encode text, move images into model space and back, noise, predict noise (optionally
through a LoRA adapter at a per-call scale, see `lora.py`).
"""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError
from . import lora
from .embedded import EMBEDDED_NAMES, prior_folder

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HUB_FILES = [
    "model_index.json", "lods_prior.json", "scheduler/*", "tokenizer/*", "text_encoder/config.json",
    "text_encoder/model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
]
_REQUIRED = ("model_index.json", "unet", "text_encoder", "tokenizer", "scheduler")


def prompt_words(prompt: str) -> list[str]:
    """Words as a whitespace word-level tokenizer sees them (runs of word characters, runs of punctuation)."""
    return re.findall(r"\w+|[^\w\s]+", prompt.lower())


def _resolve_folder(path_or_id: str | None) -> Path:
    if path_or_id is None or (str(path_or_id) in EMBEDDED_NAMES and not Path(str(path_or_id)).expanduser().exists()):
        folder = prior_folder(path_or_id)
        if not folder.is_dir():
            raise UserError(f"the embedded prior is not installed ({folder} is missing); train it first or pass a prior folder")
        return folder
    text = str(path_or_id)
    folder = Path(text).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"prior {text} is a file, not a diffusers model folder")
        return folder
    if not _HUB_ID.fullmatch(text):
        raise UserError(f"prior folder not found: {text}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(text, allow_patterns=_HUB_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(text, allow_patterns=_HUB_FILES))
    except LocalEntryNotFoundError:
        raise UserError(
            f"prior {text}: no such folder, and the model could not be found locally and there is no network"
        ) from None
    except (RepositoryNotFoundError, HfHubHTTPError, OSError) as e:
        raise UserError(f"prior {text}: no such folder, and it could not be fetched from the hub ({type(e).__name__})") from None


def refuse_custom_code(folder: Path) -> None:
    """A model folder whose configs ask to run its own Python (`auto_map`, `custom_pipeline`) is refused before
    anything is loaded: lods never executes code from a model folder."""
    for path in sorted(folder.rglob("*.json")):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if '"auto_map"' in text or '"custom_pipeline"' in text:
            raise UserError(f"{path.relative_to(folder)} in {folder} asks to run the folder's own Python code "
                            "(auto_map); lods never runs a model folder's code: remove the entry or use another folder")


class Prior:
    """A frozen text-to-image diffusion model; all tensors it returns are float32 on `device`."""

    def __init__(self, unet, text_encoder, tokenizer, scheduler, vae=None, extra: dict | None = None, source: str = ""):
        self.unet = unet
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.vae = vae
        self.extra = dict(extra or {})
        self.source = source
        for model in (unet, text_encoder, vae):
            if model is not None:
                model.requires_grad_(False)
                model.eval()
        self.device = unet.device
        self.dtype = unet.dtype
        self.alphas_cumprod = scheduler.alphas_cumprod.to(device=self.device, dtype=torch.float32)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.latent_channels = int(unet.config.in_channels)
        self.latent_size = int(unet.config.sample_size)
        self.image_size = self.latent_size * self.vae_scale_factor
        vocab = self.extra.get("vocabulary")
        self.vocabulary: list[str] | None = list(vocab) if vocab else None
        self.default_negative_prompt: str = self.extra.get("negative_prompt", "") or ""
        self.kind: str | None = self.extra.get("kind")

    @property
    def is_latent(self) -> bool:
        return self.vae is not None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path_or_id: str | None = None, device="cpu", dtype: torch.dtype | None = None) -> "Prior":
        """Load a diffusers folder or hub id (None: the embedded prior); fp16 on CUDA, fp32 elsewhere."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from safetensors import SafetensorError
        from diffusers.utils import logging as diffusers_logging
        from transformers import AutoTokenizer, CLIPTextModel
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        diffusers_logging.set_verbosity_error()  # load-time advice is noise on a one-line-error command line
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        folder = _resolve_folder(path_or_id)
        missing = [name for name in _REQUIRED if not (folder / name).exists()]
        if missing:
            raise UserError(f"{folder} is not a diffusers model folder (missing {', '.join(missing)})")
        refuse_custom_code(folder)
        try:
            index = json.loads((folder / "model_index.json").read_text())
            has_vae = (folder / "vae").is_dir() and (index.get("vae") or [None])[0] is not None
            extra_path = folder / "lods_prior.json"
            extra = json.loads(extra_path.read_text()) if extra_path.exists() else {}
            common = dict(local_files_only=True, use_safetensors=True)
            unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, **common)
            text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype, trust_remote_code=False,
                                                         **common)
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True, trust_remote_code=False)
            scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(folder, subfolder="scheduler"))
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **common) if has_vae else None
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UserError(f"{folder} is not a loadable diffusers model: {reason}") from None
        for model in (unet, text_encoder, vae):
            if model is not None:
                model.to(device)
        return cls(unet, text_encoder, tokenizer, scheduler, vae, extra, source=str(folder))

    # ---------------------------------------------------------------- text
    def check_prompt(self, prompt: str, allow_empty: bool = False) -> None:
        """Reject an empty prompt, or words outside a closed vocabulary, with a UserError."""
        if not prompt.strip():
            if allow_empty:
                return
            raise UserError("the prompt is empty")
        if self.vocabulary is None:
            return
        known = set(self.vocabulary)
        unknown = list(dict.fromkeys(w for w in prompt_words(prompt) if w not in known))
        if unknown:
            raise UserError(
                f"this prior does not know the word(s): {', '.join(unknown)}; known words: {' '.join(self.vocabulary)}"
            )

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings (B, L, D), padded to the tokenizer's context length."""
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        return self.text_encoder(ids)[0].float()

    # ---------------------------------------------------------------- images
    def encode_images(self, images01: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) → model space (differentiable): VAE latent mean, or pixels in [-1, 1]."""
        x = images01.to(self.device, torch.float32)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, (self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        if self.vae is None:
            return x
        posterior = self.vae.encode(x.to(self.dtype)).latent_dist
        return posterior.mean.float() * self.vae.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model space → images in [0, 1]."""
        z = z.to(self.device, torch.float32)
        if self.vae is not None:
            z = self.vae.decode((z / self.vae.config.scaling_factor).to(self.dtype)).sample.float()
        return ((z + 1.0) / 2.0).clamp(0.0, 1.0)

    # ---------------------------------------------------------------- diffusion
    def add_noise(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t = sqrt(ᾱ_t) z + sqrt(1 - ᾱ_t) ε, t per sample."""
        a = self.alphas_cumprod[t.to(self.device)].view(-1, *([1] * (z.dim() - 1)))
        return a.sqrt() * z + (1.0 - a).sqrt() * noise

    def predict_noise(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        embeddings: torch.Tensor,
        lora_scale: float | torch.Tensor = 0.0,
        adapter: str | None = None,
        class_labels: torch.Tensor | None = None,
        time_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ε(z_t; embeddings, t) for a batch; `adapter` at `lora_scale` (0: the pretrained model alone; a (B,)
        tensor: one scale per sample); `time_offset` ((D,) or (B, D)) is added to the UNet's timestep embedding."""
        b = z_t.shape[0]
        t = torch.as_tensor(t, device=self.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(b)
        if torch.is_tensor(lora_scale):
            lora_scale = lora_scale.to(self.device, torch.float32)
        if adapter is None and (torch.is_tensor(lora_scale) or lora_scale != 0.0):
            names = lora.adapter_names(self.unet)
            if len(names) != 1:
                raise ValueError(f"lora_scale given without an adapter name; adapters: {names}")
            adapter = names[0]
        scope = lora.adapter_scale(self.unet, adapter, lora_scale) if adapter is not None else nullcontext()
        offset = self.unet.time_embedding.register_forward_hook(
            lambda module, args, out: out + time_offset.to(out.dtype)) if time_offset is not None else None
        try:
            return self._unet_call(scope, z_t, t, embeddings, class_labels)
        finally:
            if offset is not None:
                offset.remove()

    def _unet_call(self, scope, z_t, t, embeddings, class_labels) -> torch.Tensor:
        with scope:
            out = self.unet(
                z_t.to(self.device, self.dtype),
                t,
                encoder_hidden_states=embeddings.to(self.device, self.dtype),
                class_labels=class_labels,
            ).sample
        return out.float()

    # ---------------------------------------------------------------- DDIM inversion
    def _guided(self, prompt_embeddings: torch.Tensor, negative_embeddings: torch.Tensor | None, cfg: float):
        from .inversion import guided_eps_fn

        return guided_eps_fn(self, prompt_embeddings, negative_embeddings, cfg)

    @torch.no_grad()
    def ddim_invert(self, z: torch.Tensor, t_end: int, steps: int, prompt_embeddings: torch.Tensor,
                    negative_embeddings: torch.Tensor | None = None, cfg: float = 1.0) -> torch.Tensor:
        """Deterministic DDIM inversion of model-space `z` (taken as the level t = 0) to t = `t_end` in `steps`
        even steps; conditional on `prompt_embeddings` (e.g. of "" for an unconditional inversion), with CFG
        `cfg` against `negative_embeddings` when given."""
        from .inversion import ddim_invert, ddim_timesteps

        self._check_t(t_end)
        return ddim_invert(self, z.to(self.device, torch.float32), ddim_timesteps(t_end, steps),
                           self._guided(prompt_embeddings, negative_embeddings, cfg))

    @torch.no_grad()
    def ddim_sample_from(self, z_t: torch.Tensor, t_end: int, steps: int, prompt_embeddings: torch.Tensor,
                         negative_embeddings: torch.Tensor | None = None, cfg: float = 1.0) -> torch.Tensor:
        """Deterministic DDIM sampling from `z_t` at t = `t_end` down to t = 0 along `ddim_invert`'s timesteps."""
        from .inversion import ddim_sample_back, ddim_timesteps

        self._check_t(t_end)
        return ddim_sample_back(self, z_t.to(self.device, torch.float32), ddim_timesteps(t_end, steps),
                                self._guided(prompt_embeddings, negative_embeddings, cfg))

    def _check_t(self, t: int) -> None:
        if not 0 <= int(t) < self.num_train_timesteps:
            raise ValueError(f"timestep {t} outside 0..{self.num_train_timesteps - 1}")
