"""Zip this checkout for a remote runtime_env `working_dir` (a KubeRay RayJob, or any job whose
submitter has no checkout).

The zip holds one top-level directory, as Ray requires for remote working_dir URIs, and leaves
out what `ray job submit --working-dir .` leaves out: the `excludes` of cluster/runtime_env.yaml,
plus files matched by .gitignore / .rayignore unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 (set it
to ship the rendered quickstart audio under data/).

    RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 python cluster/package_working_dir.py repeval.zip
    aws s3 cp repeval.zip s3://repeval-bucket/code/repeval.zip
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]


def package(output: pathlib.Path, *, include_gitignore: bool, repo: pathlib.Path = REPO) -> int:
    """Write the zip with Ray's own packer (so the rules match `ray job submit`); return its size."""
    # Ray's packer is internal API; repeval pins ray==2.60.0 and tests/cluster exercises this call.
    from ray._private.runtime_env.packaging import _zip_files

    with open(repo / "cluster" / "runtime_env.yaml", encoding="utf-8") as f:
        excludes = list(yaml.safe_load(f)["excludes"])
    output = output.resolve()
    if output.is_relative_to(repo):  # never zip the zip into itself
        excludes.append("/" + output.relative_to(repo).as_posix())
    _zip_files(str(repo), excludes, str(output), include_gitignore=include_gitignore, include_parent_dir=True)
    return output.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=pathlib.Path, help="zip file to write, e.g. repeval.zip")
    args = parser.parse_args(argv)
    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    size = package(args.output, include_gitignore=include_gitignore)
    note = "" if include_gitignore else " (.gitignore not applied: data/ included)"
    print(f"wrote {args.output} ({size / 2**20:.1f} MiB){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
