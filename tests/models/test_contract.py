"""The embedding-model contract, checked on every registered family.

Families whose weights are downloads run on stand-in weights of the real architecture/file
format (:mod:`repeval.models.dummies`); families in an isolated process group (``tf``,
``essentia``) are checked in a fresh process with that group's environment, one process per
group. A family is skipped only when its optional extra is not installed, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import MODELS, ModelUnavailable, build_model
from repeval.models._common import PROCESS_GROUP_ENV, extra_reason, missing_modules
from repeval.models.dummies import ESSENTIA_FAMILIES, write_essentia_dummies
from repeval.models.validate import ValidationReport, validate_models

#: shorter than the CLI's default clips: still sub-window, odd-length and multi-window inputs
TEST_CLIPS = ((0.25, 11025), (3.1, 48000))


def _skip_reason(name: str) -> str | None:
    cls = MODELS.get(name).cls
    reason = extra_reason(cls.extra or name, getattr(cls, "requires", ()))
    if reason is None and name in ESSENTIA_FAMILIES and missing_modules("tensorflow"):
        reason = "tensorflow (extra 'tf') is needed to write the stand-in graph"
    return reason


@pytest.fixture(scope="session")
def isolated_reports(dummy_dir: Path) -> Callable[[str], dict[str, ValidationReport]]:
    """Validate all runnable families of a process group in one fresh process (cached per group)."""
    cache: dict[str, dict[str, ValidationReport]] = {}

    def get(group: str) -> dict[str, ValidationReport]:
        if group not in cache:
            names = [n for n, f in MODELS.items() if f.cls.process_group == group and _skip_reason(n) is None]
            if group == "essentia":
                write_essentia_dummies(dummy_dir, tuple(n for n in names if n in ESSENTIA_FAMILIES))
            reports = validate_models([{"id": n} for n in names], dummy_weights=dummy_dir, clips=TEST_CLIPS)
            cache[group] = {r.model_id: r for r in reports}
        return cache[group]

    return get


@pytest.mark.parametrize("name", MODELS.names())
def test_registered_model_honours_contract(
    name: str, dummy_dir: Path, isolated_reports: Callable[[str], dict[str, ValidationReport]]
) -> None:
    fam = MODELS.get(name)
    cls = fam.cls
    assert cls.name == name
    assert cls.description, f"{name} has no description for `repeval models`"
    assert cls.process_group in PROCESS_GROUP_ENV, f"{name}: unknown process group {cls.process_group}"
    if not getattr(cls, "implemented", True):  # declared thesis id: must refuse to build, naming why
        reason = cls.availability(dict(fam.default_params))
        assert reason and "not implemented" in reason
        with pytest.raises(ModelUnavailable, match=name):
            build_model(EmbeddingModelConfig(id=name))
        return
    skip = _skip_reason(name)
    if skip:
        pytest.skip(f"{name}: {skip}")
    if cls.process_group == "default":
        report = validate_models([{"id": name}], dummy_weights=dummy_dir, clips=TEST_CLIPS)[0]
    else:
        report = isolated_reports(cls.process_group)[name]
    assert report.unavailable is None, report.summary()
    assert report.ok, report.summary()
    sr, _ = cls.declared_sizes(dict(fam.default_params))
    assert sr is None or sr == report.sample_rate_hz
    assert report.embedding_dim and report.embedding_dim > 0


def test_validate_model_of_a_model_without_its_weights_names_the_stand_in_check(tmp_path, monkeypatch):
    """`repeval validate-model neuralfp` without its weights said UNAVAILABLE and where to get them, and nothing of
    `--dummy-weights`, which checks the family's code with stand-in weights; it now names that command too."""
    from typer.testing import CliRunner

    from repeval.cli import app

    monkeypatch.setenv("REPEVAL_MODELS_DIR", str(tmp_path / "empty"))
    r = CliRunner().invoke(app, ["validate-model", "neuralfp"])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "UNAVAILABLE" in out and "to check its code without its weights: `repeval validate-model neuralfp " in out
    assert "--dummy-weights DIR` (stand-in weights, written into DIR)" in out, out


def test_validate_model_names_an_unknown_model_without_pydantic_noise():
    """`repeval validate-model mfcc-stat` printed pydantic's report ("1 validation error for EmbeddingModelConfig
    … [type=value_error, input_value=…] For further information visit https://errors.pydantic.dev/…"); it now
    prints the closest id and the command that lists the models."""
    from typer.testing import CliRunner

    from repeval.cli import app

    r = CliRunner().invoke(app, ["validate-model", "mfcc-stat"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    out = " ".join(r.output.split())
    assert out.startswith("error: unknown embedding model 'mfcc-stat' — did you mean 'mfcc-stats'?"), out
    assert "`repeval models` lists them" in out
    for noise in ("validation error for", "type=value_error", "input_value", "errors.pydantic.dev", "(top level)"):
        assert noise not in out, out
