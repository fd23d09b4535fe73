"""The frame every `liq` app shares, light enough for `--help` (typer only).

- `-h` is `--help` everywhere; help is click's plain layout: a flag shows no value placeholder, since it takes none;
- one error style: a mistake in the command line is one `error: ...` line on stderr and exit code 2, like every
  error the commands raise (the library's error types are mapped in `runtime.exit_code_for`, imported only when
  an error happens).
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def usage_error(error: typer.TyperException) -> int:
    """Print a command-line mistake as one line; the exit code (2)."""
    # `liq devnet` alone: its help, as click does. By name, as typer itself does: the class lives in typer's
    # private copy of click.
    if type(error).__name__ == "NoArgsIsHelpError":
        error.show()
        return error.exit_code
    context = getattr(error, "ctx", None)
    hint = f" (see `{context.command_path} -h`)" if context is not None else ""
    message = " ".join(error.format_message().split())
    sys.stderr.write(f"error: {message}{hint}\n")
    return error.exit_code


class Group(TyperGroup):
    """Runs a sub-command; turns what it raises into one line and an exit code (see `runtime.exit_code_for`)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as error:
            raise typer.Exit(usage_error(error)) from None
        except (Exception, KeyboardInterrupt) as error:
            from .runtime import exit_code_for  # only when a command fails: keeps `liq --help` light

            code = exit_code_for(error)
            if code is None:  # not a known failure: a bug, shown with its traceback (secrets cut out by main)
                raise
            raise typer.Exit(code) from None


def new_app(name: str, help: str, epilog: str | None = None) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help,
        epilog=epilog,
        cls=Group,
        context_settings=CONTEXT_SETTINGS,
        rich_markup_mode=None,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
