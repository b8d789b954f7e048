"""`lods` with the presets shrunk to a tiny CPU config (16² renders, 200 Gaussians, 2-frame turntable), so the
reliability tests can drive the real command line in a subprocess within seconds: python tiny_cli.py ARGS..."""

import sys

from lods.pipelines import presets
from lods.pipelines.run_config import ExportConfig
from lods.render.cameras import CameraSamplerConfig

_preset = presets.preset_config


def tiny_preset(preset, backbone, guidance):
    cfg = _preset(preset, backbone, guidance)
    if preset == "fast":
        cfg.steps, cfg.render_size, cfg.checkpoint_every = 6, 16, 2
        cfg.cameras = CameraSamplerConfig(views_per_step=2)
        cfg.gaussians = {"num_points": 200}
        cfg.export = ExportConfig(mesh_resolution=16, turntable_frames=2, turntable_size=16, views_size=16, eval_views=4)
    return cfg


def install() -> None:
    presets.preset_config = tiny_preset  # also image_preset_config's base


if __name__ == "__main__":
    install()
    from lods.cli import run_main

    sys.exit(run_main(sys.argv[1:]))
