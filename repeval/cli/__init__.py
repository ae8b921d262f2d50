"""The ``repeval`` command line: the Typer apps, the global options and the entry point. The commands live in
:mod:`repeval.cli.planning` (validate, plan), :mod:`repeval.cli.experiment` (run … report), :mod:`repeval.cli.data`
(``repeval data``), :mod:`repeval.cli.listings` (runs, schema, datasets, models, validate-model) and
:mod:`repeval.cli.store` (``repeval store``); what they share in :mod:`repeval.cli.common`, how they fail in :mod:`repeval.cli.errors`."""

from __future__ import annotations

from repeval.cli.starting import quiet_while_starting, started

# first: a Ctrl-C or SIGTERM during the imports below (numpy's, pydantic's: a second on a loaded machine) ends the
# command with one line, not a traceback; put back once they are done (``started``, below)
_starting = quiet_while_starting()

import inspect  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402
from typer.core import TyperCommand, TyperGroup  # noqa: E402

from repeval.cli.errors import _state  # noqa: E402
from repeval.uri_text import shown  # noqa: E402


class _FlagsWithoutType:
    """A command whose ``--help`` shows a flag as a flag (``--debug  show tracebacks``), not as an option taking a
    value: Typer 0.29's help panel gives every option its type, ``--debug <bool>``, even ``--help <bool>``, and has
    no setting to leave it out — an empty metavar is what it shows instead. Its usage line shows each argument plain
    (:meth:`collect_usage_pieces`), and its help panel and usage errors name it so too (``CONFIG``, ``RUNS_DIR``:
    Typer 0.29 names one without a metavar by its parameter's name, ``Missing argument 'config'.``, below a usage
    line that says ``CONFIG``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif param.param_type_name == "argument" and param.metavar is None:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
        return params  # type: ignore[no-any-return]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line with each argument plain, as click writes it: ``RUN...``, ``CONFIG``, ``[RUNS_DIR]`` — Typer
        0.29 writes a required one in braces (``{RUN}...``, ``{config}``), a notation no user types."""
        arguments = [p for p in self.get_params(ctx) if p.param_type_name == "argument"]
        plain = {" ".join(p.get_usage_pieces(ctx)): _plain_argument(p) for p in arguments}
        return [plain.get(piece, piece) for piece in super().collect_usage_pieces(ctx)]  # type: ignore[misc]


def _plain_argument(param: Any) -> str:
    """An argument as the usage line shows it: its metavar (:meth:`_FlagsWithoutType.get_params` gives each one), in
    brackets when optional (unless its metavar has them: ``[STORE] [PARTITION...]``), ``...`` after it when it takes
    several (unless its metavar says so: ``[STORE] PARTITION...``)."""
    name = param.metavar
    if not param.required and not name.startswith("["):
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 and "..." not in name else "")


class FlagsGroup(_FlagsWithoutType, TyperGroup):
    """A group of commands whose help shows its flags as flags (:class:`_FlagsWithoutType`)."""


class FlagsCommand(_FlagsWithoutType, TyperCommand):
    """A command whose help shows its flags as flags (:class:`_FlagsWithoutType`)."""


# a bare `repeval` (`repeval data`, `repeval store`) prints its help and exits 0, as git and ray do: Typer's
# no_args_is_help exits 2 under click ≥ 8.2 (a usage error); the callbacks print the help themselves (_help_if_bare)
app = typer.Typer(cls=FlagsGroup, add_completion=False, invoke_without_command=True, help="Evaluate music audio embeddings at catalog scale.")  # fmt: skip
data_app = typer.Typer(
    cls=FlagsGroup,
    invoke_without_command=True,
    help="Render the quickstart's data (render), download a mirdata set (download), check audio files before a "
    "run (check).",
)
store_app = typer.Typer(
    cls=FlagsGroup,
    invoke_without_command=True,
    help="Inspect the embedding store (ls, show) and tidy it: delete partitions or tracks (rm), finish stopped "
    "removals (settle), remove a dead run's lease (unlock).",
)
app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")


def _help_if_bare(ctx: typer.Context) -> None:
    """The group's help, and exit status 0, when no command follows it."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        typer.echo(ctx.get_help(), nl=False)
        raise typer.Exit(0)


@data_app.callback()
def _data(ctx: typer.Context) -> None:
    _help_if_bare(ctx)


@store_app.callback()
def _store(ctx: typer.Context) -> None:
    _help_if_bare(ctx)


def version_line() -> str:
    """``repeval --version``: repeval's version and the Ray and Python it runs on, on one line."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return f"repeval {of('repeval')} (Ray {of('ray')}, Python {platform.python_version()})"


def _print_version(given: bool) -> None:
    if given:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="more logging")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the versions of repeval, Ray and Python"
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    _state["resume"] = _state["job"] = None  # set by the run context (`_stage`): how to resume it if interrupted
    handler = logging.StreamHandler()
    handler.setFormatter(CliFormatter(named=debug or verbose))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING, handlers=[handler]
    )
    logging.getLogger("repeval").setLevel(logging.DEBUG if debug or verbose else logging.INFO)
    # repeval's own warnings as one line each, like its log lines (--debug: Python's form, with file and line)
    warnings.formatwarning = _python_formatwarning if debug else _format_warning
    # Ray Data logs every execution's plan and progress at INFO; repeval prints its own summary lines
    os.environ.setdefault("REPEVAL_RAY_DATA_LOG_LEVEL", "DEBUG" if debug else "INFO" if verbose else "ERROR")
    _help_if_bare(ctx)


class CliFormatter(logging.Formatter):
    """Log lines as a user of the command reads them: repeval's own INFO lines as the message alone (``embedded 640
    rows …``), its warnings and errors as ``WARNING: message``; with ``--verbose``/``--debug`` (``named``), and for
    every other package, ``LEVEL logger.name: message`` — which module said it is for whoever debugs repeval."""

    def __init__(self, named: bool = False) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.named = named
        self._info = logging.Formatter("%(message)s")
        self._other = logging.Formatter("%(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if self.named or record.name.partition(".")[0] != "repeval":
            return super().format(record)
        # a URI as the user wrote it (catalog s3://b/my folder/m.csv), not as pyarrow parses it (my%20folder)
        return shown((self._info if record.levelno <= logging.INFO else self._other).format(record))


_python_formatwarning = warnings.formatwarning


def _format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning of repeval's categories, or given by its code, as ``Category: message`` — not Python's form, which
    adds the repeval source file, line number and code line that gave it (nothing a user can act on); any other
    package's warning in Python's form."""
    from repeval.warn import is_ours

    if is_ours(category, filename):
        return f"{category.__name__}: {shown(str(message))}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


# the commands register on the apps above as their modules are imported (after the apps exist): `repeval --help`
# lists them in that order, validate and plan, then the experiment commands, before the listings
from repeval.cli import data, planning, experiment, listings, store  # noqa: E402, F401, I001


def _one_line_listings(*apps: typer.Typer) -> None:
    """Each command's line in ``repeval --help`` (``repeval data --help``, …): the first paragraph of its docstring
    as one text, which the listing wraps to the terminal — Typer's rich listing keeps the docstring's own line breaks,
    breaking lines mid-sentence at the width of the source. The command's own ``--help`` is left as it is."""
    for sub in apps:
        for info in sub.registered_commands:
            if info.short_help is None:
                doc = inspect.cleandoc(info.help or getattr(info.callback, "__doc__", None) or "")
                info.short_help = " ".join(doc.split("\n\n")[0].split())


def _flags_as_flags(*apps: typer.Typer) -> None:
    """Each command's ``--help`` shows its flags as flags (:class:`FlagsCommand`)."""
    for sub in apps:
        for info in sub.registered_commands:
            if info.cls is None or info.cls is TyperCommand:  # the default (Typer's app.command gives it)
                info.cls = FlagsCommand


_one_line_listings(app, data_app, store_app)
_flags_as_flags(app, data_app, store_app)
started(_starting)

#: repeval's own options, which click takes only before the command (`repeval -v run CONFIG`, `repeval --version`)
GLOBAL_FLAGS = frozenset({"--debug", "-v", "--verbose", "--version"})


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` (without the program name) with repeval's own options moved before the command wherever they were
    given, so ``repeval run CONFIG -v`` is ``repeval -v run CONFIG`` rather than click's "No such option: -v", and
    ``repeval run CONFIG --version`` prints the versions (no command takes these names itself); nothing after a
    ``--`` moves."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = argv[:end]
    return [a for a in head if a in GLOBAL_FLAGS] + [a for a in head if a not in GLOBAL_FLAGS] + argv[end:]


def script_command(command: str, script: str) -> TyperGroup:
    """The ``repeval`` app as a script that runs one of its commands (``python jobs/run.py CONFIG``, for ``ray job
    submit``): ``command`` is its only command, named ``script`` — its usage line and errors read ``jobs/run.py
    [OPTIONS] CONFIG``, the line that runs it, not ``jobs/run.py run [OPTIONS] CONFIG``, whose ``run`` it would take for
    the config. Call it with ``prog_name=""`` and the arguments after ``script`` (:func:`hoist_global_options`: the
    global options go before it): ``script_command("run", "jobs/run.py")(["jobs/run.py", *argv], prog_name="")``."""
    group = typer.main.get_command(app)
    if not isinstance(group, TyperGroup):  # for mypy: the app has commands
        raise TypeError(f"repeval's app is a {type(group).__name__}, not a group of commands")
    group.commands = {script: group.commands[command]}
    _state["script"] = script  # a job resumed by submitting it again names the script as its entrypoint
    return group


#: the commands whose work runs torch (or, ``plan``, says which MKL path it will run): only these re-execute
MKL_COMMANDS = frozenset({"run", "train", "evaluate", "embed", "plan", "validate-model"})


def entrypoint() -> None:
    from repeval.cpu import prepare_entry_point
    from repeval.ray_signals import exit_on_sigterm

    starting = quiet_while_starting()  # until the command's own handlers are there (the MKL shim's re-execution)
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    prepare_entry_point(reexec=command in MKL_COMMANDS)
    exit_on_sigterm()
    started(starting)
    try:
        app(args=hoist_global_options(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
