"""The embedded prior's optional autoencoder: Stable Diffusion's AutoencoderKL at a size a CPU can train.

32² images ↔ 16² × 4 latents (two encoder blocks: 2× downsampling). A latent embedded prior is a UNet on these
latents with this VAE in the folder's vae/, the layout of Stable Diffusion, so `Prior.load` reads it unchanged.
"""

from __future__ import annotations

import torch

LATENT_CHANNELS = 4


def build_vae(seed: int = 0, size: int = 32):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=size,
    )


@torch.no_grad()
def encode_means(vae, images_uint8: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The posterior means of uint8 images (N, 3, H, W), unscaled."""
    out = []
    for i in range(0, len(images_uint8), batch):
        x = images_uint8[i:i + batch].float() / 127.5 - 1.0
        out.append(vae.encode(x).latent_dist.mean)
    return torch.cat(out)
