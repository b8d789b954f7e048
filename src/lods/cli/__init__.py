"""The `lods` command: a thin layer over the pipelines' and benchmarks' typed configs.

One module per command group; common.py holds what they share and maps failures to one line and an exit code.
"""

from __future__ import annotations

import sys

import typer

from . import bench, distill2d, evaluate, gap, generate, image, judge, prior, view
from .common import run_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Text- and image-to-3D by score distillation (LODS, SDS, CSD, VSD) on 3D Gaussians and NeRF.",
)
app.add_typer(prior.app, name="prior")
app.add_typer(judge.app, name="judge")
bench.app.command("gap")(gap.gap)
app.add_typer(bench.app, name="bench")
app.command()(distill2d.distill2d)
app.command()(generate.generate)
app.command("eval")(evaluate.eval_run)
app.command("image-to-3d")(image.image_to_3d)
app.command("view")(view.view)


def main() -> None:
    """Entry point: every failure is one line on stderr and an exit code (README: exit codes); no traceback."""
    sys.exit(run_main(sys.argv[1:]))


def run_main(argv: list[str]) -> int:
    return run_app(app, argv)
