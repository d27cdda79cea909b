"""The `repro` command line: parse, validate, call one library function. Only this package imports click.

Each shared option is declared once (options.py); the verbs are grouped by family (runs.py, grids.py, data.py,
reports.py). Nothing here imports torch, numpy or pandas at module level: `repro --help` stays fast.
"""

from __future__ import annotations

import errno

import click

from .. import __version__


class ReproError(click.ClickException):
    """A problem with the user's input, shown as one line with exit code 2 (no traceback)."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: every run resumes from its last checkpoint, so the same command finishes it."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted; rerun the same command to resume")


ELSEWHERE = (
    "; repro evaluate, which writes beside its run, has no --runs: copy the run's folder into a writable run store and "
    "evaluate the copy"
)
OS_FIXES = {
    errno.ENOSPC: "free space on that file system (or use another: --runs for the run store, $REPRO_CACHE for the "
    "frame cache), then rerun the same command: finished work is kept and runs resume" + ELSEWHERE,
    errno.EDQUOT: "free space within your quota (or use another file system: --runs, $REPRO_CACHE), then rerun the "
    "same command: finished work is kept and runs resume" + ELSEWHERE,
    errno.EROFS: "the file system is mounted read-only: point --runs (the run store) or $REPRO_CACHE (the frame "
    "cache) at a writable folder, then rerun the same command" + ELSEWHERE,
    errno.EACCES: "give this user access to it, or point --runs or $REPRO_CACHE at a folder of your own, then rerun "
    "the same command" + ELSEWHERE,
    errno.ELOOP: "a symbolic link in this path points back at itself: fix or remove the link",
    errno.ENOENT: "check the path (a folder may have been moved or unmounted)",
}
OS_FIXES[errno.EPERM] = OS_FIXES[errno.EACCES]


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: the file, what went wrong, the fix."""
    where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
    what = error.strerror or str(error)
    fix = OS_FIXES.get(error.errno, "fix the file or folder named, then rerun the same command")
    return f"cannot use {where or 'a file'}: {what}. Fix: {fix}"


def one_line(error: Exception) -> str | None:
    """The line a user sees for `error`: every error of input, data, run store or operating system; None for a
    defect of repro itself, which keeps its traceback."""
    from ..data.layout import DataError
    from ..runs import RunError
    from ..settings import ConfigError

    if isinstance(error, OSError) and error.errno is None:  # a message of ours, e.g. "no finished runs in ..."
        return str(error)
    if isinstance(error, OSError):
        return None if error.errno == errno.EPIPE else os_error_line(error)  # click handles a closed pipe
    if isinstance(error, (ConfigError, DataError, RunError, ValueError)):
        return str(error)
    return None


class ReproGroup(click.Group):
    """The one error path of the CLI: every error a user can cause or meet is one line with exit code 2 (130
    for Ctrl-C); `--debug` or REPRO_DEBUG=1 lets it through with its traceback."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug")
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit):  # Exit: a verb's --help, or a done verb
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            raise Interrupted() from None
        except Exception as error:
            line = None if debug else one_line(error)
            if line is None:
                raise
            raise ReproError(line) from None


@click.group(cls=ReproGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="repro")
@click.option(
    "--debug",
    is_flag=True,
    envvar="REPRO_DEBUG",
    help="Show the traceback of an error instead of its one line (also REPRO_DEBUG=1).",
)
def main(debug: bool) -> None:
    """Reproduce, ablate and extend memory-augmented autoencoders for video anomaly detection."""


def fail_if_any(failures: dict[str, str]) -> None:
    """Exit 1 naming each failed run after the report of the others is written."""
    if failures:
        lines = "\n".join(f"  runs/{name}: {error}" for name, error in failures.items())
        raise click.ClickException(f"{len(failures)} run(s) failed (their status.json says why):\n{lines}")


def _register() -> None:
    from . import data, grids, reports, runs

    for command in (runs.bench, runs.train, runs.evaluate, runs.score, grids.sweep, grids.claims, grids.ablate):
        main.add_command(command)
    for command in (data.data, reports.report, reports.probe, reports.export):
        main.add_command(command)


_register()
