"""Re-export a run's model.ply and mesh from its last checkpoint into another folder (the run is not touched):
`python scripts/reexport_run.py RUN OUT [--mesh vertex|textured] [--mesh-faces N] [--texture-size S]`."""

import argparse
import dataclasses
from pathlib import Path

import torch

from lods.export.assets import export_mesh
from lods.scenes.ply import save_ply
from lods.pipelines.loop import build_scene
from lods.pipelines.run_config import load_run_config
from lods.utils.io import load_checkpoint


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--mesh", default="vertex")
    ap.add_argument("--mesh-faces", type=int, default=None)
    ap.add_argument("--texture-size", type=int, default=512)
    args = ap.parse_args()
    cfg = load_run_config(Path(args.run))
    scene = build_scene(cfg, torch.device("cpu"))
    tensors, _ = load_checkpoint(Path(args.run) / "checkpoints" / "last.safetensors")
    scene.load_state_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("scene/")})
    scene.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export = dataclasses.replace(cfg.export, mesh=args.mesh, mesh_max_faces=args.mesh_faces, texture_size=args.texture_size)
    with torch.no_grad():
        if cfg.backbone == "gs":
            save_ply(scene, out / "model.ply")
        print(export_mesh(scene, out, export))


if __name__ == "__main__":
    main()
