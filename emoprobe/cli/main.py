"""The `emoprobe` command group, and the ONE place where errors become one line.

Every failure ends as one line on stderr and a non-zero exit in `EmoprobeGroup.main`;
commands just raise. Commands live one group per module beside this one.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

from emoprobe._version import __version__
from emoprobe.cli.params import with_flag_hint
from emoprobe.errors import EmoprobeError, one_line

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class EmoprobeGroup(click.Group):
    """A click group whose every failure is one line, never a traceback."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(args, *rest, **kwargs)
        except NoArgsIsHelpError as error:  # a bare group: its help, as git does
            click.echo(error.ctx.get_help() if error.ctx else "")
            code = 0
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            _fail(f"{error.format_message()}{hint}", EXIT_USAGE)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except click.Abort:
            _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
        except EmoprobeError as error:
            _fail(with_flag_hint(error), EXIT_ERROR)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            _fail(f"{error.strerror or error}{where}", EXIT_ERROR)
        except Exception as error:  # a bug: still one line, and how to see more
            if os.environ.get("EMOPROBE_TRACEBACK"):
                raise
            _fail(
                f"internal error ({type(error).__name__}: {error}); please report it — "
                "EMOPROBE_TRACEBACK=1 shows the traceback",
                EXIT_ERROR,
            )
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


@click.group(cls=EmoprobeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emoprobe")
def cli() -> None:
    """Probe vision-language models on facial-expression tasks through a local Ollama.

    A research and teaching tool: see the README on the law and on consent.
    """


#: Young objects collected every 50,000 allocations, not Python's 700: a command that reads
#: tens of thousands of rows otherwise spends a fifth of its CPU walking the heap its
#: libraries left (pandas, scikit-learn) again and again. Cycles are still collected.
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    """The console script: this process's collector set for batch work, then the group."""
    gc.set_threshold(*GC_THRESHOLD)
    cli()


def _add_commands() -> None:
    from emoprobe.cli.cache import cache
    from emoprobe.cli.classify import classify
    from emoprobe.cli.models import doctor, models
    from emoprobe.cli.report import compare, report
    from emoprobe.cli.run import run
    from emoprobe.cli.runs import runs
    from emoprobe.cli.study import study
    from emoprobe.cli.view import view

    for command in (run, classify, cache, models, doctor, report, compare, runs, view, study):
        cli.add_command(command)


_add_commands()
