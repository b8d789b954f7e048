"""Errors with an exit code. Library code raises them; only the CLI turns them into one line on stderr and the code.

Exit codes: 2 bad input, 1 the environment (disk full, permission), 3 a diverged run, 130 interrupted.
"""


class LodsError(Exception):
    """Base class: a failure the user can act on, reported as one line."""

    exit_code = 2


class UserError(LodsError, ValueError):
    """Bad input: a bad prompt, a missing prior folder, impossible settings, a busy or foreign run folder."""

    exit_code = 2


BadInput = UserError


class ConfigError(UserError):
    """A config that cannot run: an unknown key, a value of the wrong type or out of range, a loss without its λ."""


class EnvironmentProblem(LodsError, OSError):
    """The machine, not the input: a full disk, a read-only folder, a missing permission."""

    exit_code = 1


class Diverged(LodsError, ValueError):
    """The optimisation produced a non-finite loss or gradient; the last checkpoint is kept."""

    exit_code = 3


class Interrupted(LodsError):
    """SIGINT / SIGTERM: the run stopped cleanly (with a checkpoint at `step` when one was written)."""

    exit_code = 130

    def __init__(self, step: int | None = None, message: str | None = None):
        self.step = step
        if message is None:
            message = (f"stopped at step {step}; continue with --resume" if step is not None
                       else "stopped before the first step; rerun the same command to start again")
        super().__init__(message)
