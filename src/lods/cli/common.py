"""What the command modules share: option help, device checks, flags and `--set` applied to a config, and the
mapping of every failure to one line on stderr and an exit code. A leaf: it imports no other cli module."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from typer import Abort

try:  # typer >= 0.2x vendors click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.core import ParameterSource
    from click.exceptions import UsageError

from ..errors import LodsError, UserError

PRIOR_HELP = ("Diffusers folder or hub id of the prior (default: the embedded prior; `embedded-latent`: the embedded "
              "latent prior).")
DEVICE_HELP = "cpu or cuda."
QUIET_HELP = "No progress bar."


def check_device(device: str) -> str:
    """`device` when it is cpu, cuda or cuda:N and available; UserError otherwise."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}; choose cpu or cuda")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
    return device


def not_started(out: Path) -> bool:
    """A folder a run opened but was stopped in before it wrote config.yaml (or a checkpoint)."""
    from ..runs import CHECKPOINT, RunDir

    return out.is_dir() and not (out / "config.yaml").exists() and not (out / CHECKPOINT).exists() \
        and RunDir(out, "").contents() <= {".lock", "checkpoints"}


def given(ctx, name: str) -> bool:
    """Whether option `name` was given (command line or environment), not left at its default."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def apply_flags(config, prior=None, steps=None, cfg=None, device=None) -> None:
    """Command-line flags that override a preset's config (None: keep the preset's value)."""
    if prior is not None:
        config.prior = prior
    if steps is not None:
        config.steps = steps
    if cfg is not None:
        config.guidance_config.guidance_scale = cfg
    if device is not None:
        config.device = check_device(device)


# ---------------------------------------------------------------------------------------------- failures
def fit_phrase(fit: dict) -> str:
    """The learned branch's verdict (metrics.json `learned_fit`) for a run's closing line."""
    verdict = "fits" if fit["fits"] else "does NOT fit"
    return (f"the learned branch {verdict} the renders (its loss {fit['fit_ratio']:.2f}× the prior's on clean images; "
            "≤ 1.5 fits)")


def run_app(app, argv: list[str]) -> int:
    """Run the typer `app` on `argv`; every failure is one line on stderr and an exit code (README: exit codes)."""
    import os

    threads = os.environ.get("LODS_THREADS")
    try:
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        code = app(argv, prog_name="lods", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except LodsError as e:
        return fail(str(e), e.exit_code)
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `lods` alone: the help was printed
            return 0
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        return fail(" ".join(e.format_message().split()) + where, 2)
    except (KeyboardInterrupt, Abort):
        return fail("interrupted", 130)
    except FileNotFoundError as e:
        return fail(f"{e.strerror}: {e.filename}", 2)
    except OSError as e:
        return fail(os_error_line(e), 1)
    except MemoryError:
        return fail("out of memory; try a smaller --steps / render size, or close other programs", 1)


def fail(message: str, code: int) -> int:
    print(f"lods: error: {message}", file=sys.stderr)
    return code


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the environment, not the input (exit 1)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{f' writing {e.filename}' if e.filename else ''}; the last checkpoint and " \
               "earlier outputs are kept (free some space, then rerun with --resume)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{e.strerror}: {e.filename}" if e.filename else str(e)
    return " ".join(str(e).split()) or type(e).__name__
