"""README.md names every command, option, probe preset and configuration block the code has."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from repeval.cli import app
from repeval.config.experiment import ExperimentConfig
from repeval.config.run import ResourcesConfig, RunConfig
from repeval.config.schema import Config
from repeval.tuning.presets import PRESETS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _first_column(header: str) -> list[str]:
    """The backticked names in the first column of the README table whose header starts with ``header``."""
    lines = README[README.index(f"\n{header}") + 1 :].splitlines()
    rows = [ln for ln in lines[2 : next(i for i, ln in enumerate(lines) if not ln.startswith("|"))]]
    return [re.match(r"\| `([\w-]+)`", ln).group(1) for ln in rows]  # type: ignore[union-attr]


def test_readme_names_every_command_option_preset_and_run_key():
    """A user reads the README's tables as the whole surface: a command, option, preset or ``run:`` key missing
    there (the session's `store show --errors`, `plan --smoke-test`, `table --scale`, `run.ci_alpha`, …) is one
    they never learn exists."""
    root = typer.main.get_command(app)
    commands, options = [], []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        for sub_name, sub in (subs or {name: cmd}).items():
            commands.append(f"{name} {sub_name}" if subs else name)
            options += [(commands[-1], o) for p in sub.params for o in p.opts if o.startswith("--") and o != "--help"]
    options += [("", o) for p in root.params for o in p.opts if o.startswith("--") and o != "--help"]
    table = [ln.split(" | ")[0] for ln in _section("Commands").splitlines() if ln.startswith("| `repeval ")]
    listed = set()
    for cell in table:
        for m in re.finditer(r"`repeval ([\w-]+(?:\\\|[\w-]+)*)(?: ([a-z]+))?", cell):
            for name in m.group(1).split("\\|"):
                listed.add(f"{name} {m.group(2)}" if name in ("data", "store") else name)
    assert sorted(set(commands) - listed) == [], "commands missing from README's table"
    assert [(c, o) for c, o in options if o not in README] == [], "options README never names"

    assert sorted(_first_column("| preset |")) == sorted(PRESETS.names())
    assert sorted(_first_column("| key | default |")) == sorted(RunConfig.model_fields)
    for model in (Config, ExperimentConfig, RunConfig, ResourcesConfig):
        missing = [k for k in model.model_fields if f"`{k}`" not in README and f"run.{k}" not in README]
        assert missing == [], f"{model.__name__} keys README never names"


def _readme_default(text: str) -> object:
    """A default as the README's tables write it: `false`, `[test]`, 1200, `auto`, none."""
    import yaml

    value = yaml.safe_load(text.strip().strip("`"))
    return None if value == "none" else value


def test_readme_run_key_defaults_are_the_codes():
    """The ``run:`` table's default column (and the ``resources`` row's values in parentheses) is what a
    configuration that leaves the key out gets: a default changed in code and not in the README is a wrong promise."""
    lines = README[README.index("\n| key | default |") + 1 :].splitlines()
    rows = lines[2 : next(i for i, ln in enumerate(lines) if not ln.startswith("|"))]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))] for ln in rows]
    table = {c[0].strip("`"): c for c in cells}
    assert sorted(table) == sorted(RunConfig.model_fields)
    for key, row in table.items():
        if key in ("run_id", "resources"):  # a name made per command; a block of its own, below
            continue
        default = RunConfig.model_fields[key].default
        documented = _readme_default(re.match(r"\s*(`[^`]*`|\S+)", row[1]).group(1))  # type: ignore[union-attr]
        assert documented == (list(default) if isinstance(default, tuple) else default), (key, row[1], default)
    said = dict(re.findall(r"`(\w+)` \(([^)]*)\)", table["resources"][2]))
    assert said, table["resources"][2]
    for key, text in said.items():
        assert _readme_default(text) == ResourcesConfig.model_fields[key].default, (key, text)
