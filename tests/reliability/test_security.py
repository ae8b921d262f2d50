"""Security: no code execution from data, safe YAML, store/run paths that cannot escape, a local-only dashboard.

The source scan walks the AST of every module of the package and of ``jobs/`` (not a regex over
text: comments and docstrings that *mention* ``torch.load`` do not count, calls do).
"""

from __future__ import annotations

import ast
import functools
import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import REPO

from repeval.config import ConfigError, load_config, parse_config
from repeval.store import EmbeddingStore
from repeval.store.layout import _safe
from repeval.testing.ahead import ahead_fixture

SOURCES = sorted([*(REPO / "repeval").rglob("*.py"), *(REPO / "jobs").rglob("*.py")])


@functools.cache
def _nodes(path: Path) -> list[ast.AST]:
    """Every node of the source file ``path``, parsed once for this module's scans of the package (~1 s each)."""
    return list(ast.walk(ast.parse(path.read_text(), str(path))))


#: unpickling-style loaders: never on a file a user or a store could supply
UNSAFE_LOADERS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
    ("dill", "load"), ("dill", "loads"), ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"),
    ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
    ("yaml", "load"), ("yaml", "load_all"), ("yaml", "unsafe_load"), ("yaml", "unsafe_load_all"), ("yaml", "full_load"),
    ("yaml", "full_load_all"), ("os", "system"), ("os", "popen"),
}  # fmt: skip


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ()  # a call on an expression (e.g. ``net.to(d).eval()``): not a module-level function
    parts.append(node.id)
    return tuple(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def safe_yaml_loaders(sources: list[Path]) -> set[str]:
    """The names of the ``yaml.SafeLoader`` subclasses the package defines (``class Loader(yaml.SafeLoader)``), each
    checked to be one once imported: ``yaml.load(text, Loader=<one of them>)`` reads YAML as ``yaml.safe_load`` does."""
    names = {"SafeLoader", "CSafeLoader"}
    for path in sources:
        for node in _nodes(path):
            if isinstance(node, ast.ClassDef) and any(_dotted(b) == ("yaml", "SafeLoader") for b in node.bases):
                module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
                assert issubclass(getattr(module, node.name), yaml.SafeLoader), (path, node.name)
                names.add(node.name)
    return names


def _safe_yaml_load(call: ast.Call, name: tuple[str, ...], safe: frozenset[str] | set[str]) -> bool:
    loader = _kw(call, "Loader")
    return name[-2:] in {("yaml", "load"), ("yaml", "load_all")} and _dotted(loader or ast.Constant(None))[-1:] in {
        (n,) for n in safe
    }


def findings(source: str, filename: str = "<src>", safe: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every dangerous call in ``source`` as ``file:line: what`` (``safe``: :func:`safe_yaml_loaders`)."""
    return _findings(ast.walk(ast.parse(source, filename)), filename, safe)


def _findings(nodes: Iterable[ast.AST], filename: str, safe: frozenset[str] | set[str]) -> list[str]:
    out = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        if name in {("eval",), ("exec",)}:
            out.append(f"{where}: {name[0]}()")
        if len(name) >= 2 and name[-2:] in UNSAFE_LOADERS and not _safe_yaml_load(node, name, safe):
            arg = node.args[0] if node.args else None
            # pickle.loads(pickle.dumps(x)) round-trips our own object (the model contract test): allowed
            if not (isinstance(arg, ast.Call) and _dotted(arg.func)[-1:] == ("dumps",)):
                out.append(f"{where}: {'.'.join(name)}()")
        if name[-2:] == ("torch", "load") and not _is_const(_kw(node, "weights_only"), True):
            out.append(f"{where}: torch.load without weights_only=True")
        if name[-2:] in {("np", "load"), ("numpy", "load")} and _is_const(_kw(node, "allow_pickle"), True):
            out.append(f"{where}: np.load(allow_pickle=True)")
        if name[:1] == ("subprocess",) or name[-1:] in {("Popen",)}:
            shell = _kw(node, "shell")
            if shell is not None and not _is_const(shell, False):
                out.append(f"{where}: subprocess with shell=")
            if node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp):
                out.append(f"{where}: subprocess with a command string (use an argument list)")
    return out


def test_scanner_catches_what_it_must():
    bad = """
import pickle, torch, subprocess, os, yaml, numpy as np
eval(x); exec(y)
pickle.load(open(p, 'rb')); torch.load(p); torch.load(p, weights_only=False)
subprocess.run(f"ls {d}", shell=True); subprocess.check_output("ls " + d); os.system(c)
yaml.load(t); yaml.full_load(t); np.load(p, allow_pickle=True); yaml.load(t, Loader=yaml.Loader)
"""
    assert len(findings(bad, safe={"SafeLoader"})) == 13, findings(bad)
    good = """
import pickle, torch, subprocess, yaml, numpy as np
model.eval(); torch.load(p, weights_only=True); pickle.loads(pickle.dumps(m))
subprocess.run([sys.executable, '-c', code]); yaml.safe_load(t); np.load(p); yaml.load(t, Loader=yaml.SafeLoader)
"""
    assert findings(good, safe={"SafeLoader"}) == []


def test_package_source_has_no_code_execution_from_data():
    assert len(SOURCES) > 30
    safe = safe_yaml_loaders(SOURCES)
    problems = [f for path in SOURCES for f in _findings(_nodes(path), str(path.relative_to(REPO)), safe)]
    assert problems == []


def test_yaml_is_only_read_with_safe_load():
    # or with yaml.load and a SafeLoader of the package's (repeval/config/yaml_keys.py: duplicate keys refused)
    calls = set()
    safe = safe_yaml_loaders(SOURCES)
    for path in SOURCES:
        for node in _nodes(path):
            if isinstance(node, ast.Call) and _dotted(node.func)[:1] == ("yaml",):
                name = _dotted(node.func)
                calls.add("safe_load" if _safe_yaml_load(node, name, safe) else name[1])
    assert calls, "the package reads YAML somewhere"
    assert {c for c in calls if "load" in c} <= {"safe_load", "safe_load_all"}


def test_yaml_tags_that_construct_objects_are_refused(tmp_path):
    for payload in (
        "experiments: !!python/object/apply:os.system ['touch pwned']\n",
        "experiments: !!python/name:os.system\n",
        "run: !!python/object/new:subprocess.Popen [['touch', 'pwned']]\n",
    ):
        p = tmp_path / "evil.yaml"
        p.write_text(payload)
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config(p)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize(
    ("dataset", "model", "scenario"),
    [("../../etc", "mfcc", "clean"), ("tones", "../../../tmp/x", "clean"), ("a/b", "m", "..%2F.."), ("d", "m", "c\0x")],
)
def test_store_paths_stay_inside_the_store(tmp_path, dataset, model, scenario):
    store = EmbeddingStore(str(tmp_path / "store"))
    part = store.partition(dataset, model, scenario)
    root = os.path.realpath(store.root)
    assert os.path.commonpath([root, os.path.realpath(part.path)]) == root
    assert part.path.count("/") == store.root.count("/") + 3  # exactly dataset/model/scenario below the root


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_safe_store_component_never_escapes(component):
    try:
        out = _safe(component)
    except ValueError:
        return  # "", ".", ".." and their sanitised forms are refused
    assert "/" not in out and "\\" not in out and "\0" not in out and out not in {".", ".."}


def test_names_that_become_paths_are_refused_in_configs():
    base = {
        "experiments": [
            {
                "task": {"name": "pitch", "type": "multiclass_classification"},
                "datasets": [{"name": "tones", "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"name": "linear"}],
            }
        ]
    }
    bad = [
        ("task", {"name": "../../../tmp/x", "type": "multiclass_classification"}, "experiments[0].task.name"),
        ("embedding_models", [{"id": "../up", "type": "mfcc-stats"}], "experiments[0].embedding_models[0].id"),
        ("downstream_models", [{"name": ".."}], "experiments[0].downstream_models[0].name"),
        ("deformations", [{"name": "a/b", "steps": [{"type": "Gain"}]}], "experiments[0].deformations[0].name"),
    ]
    for key, value, path in bad:
        d = yaml.safe_load(yaml.safe_dump(base))
        d["experiments"][0][key] = value
        with pytest.raises(ConfigError) as info:
            parse_config(d)
        assert f"{path}: " in str(info.value) and "cannot name a file" in str(info.value)
    with pytest.raises(ConfigError, match=r"run\.run_id"):
        parse_config({**base, "run": {"run_id": "../../etc"}})


def test_cli_run_id_cannot_escape_the_runs_dir(tmp_path):
    from repeval.runner import make_context

    cfg = parse_config(
        {
            "run": {"runs_dir": str(tmp_path / "runs"), "store": str(tmp_path / "store")},
            "experiments": [
                {
                    "task": {"name": "pitch", "type": "multiclass_classification"},
                    "datasets": [{"name": "tones", "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"name": "linear"}],
                }
            ],
        }
    )
    for rid in ("../../escaped", "a/../../escaped", "..", "/abs"):
        with pytest.raises(ValueError, match="run id"):
            make_context(cfg, run_id=rid)
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_embedded_ray_binds_the_dashboard_to_localhost(monkeypatch):
    import ray

    from repeval import ray_utils

    seen: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_utils.init_ray()
    assert seen[-1]["dashboard_host"] == "127.0.0.1"
    assert seen[-1]["include_dashboard"] is False
    # the user can configure otherwise, explicitly
    ray_utils.init_ray(include_dashboard=True, dashboard_host="0.0.0.0")
    assert seen[-1]["dashboard_host"] == "0.0.0.0"
    # attaching to a cluster (ray job submit) does not start a dashboard of its own; something must listen there
    # (init_ray checks that the address answers before Ray's long retries)
    with socket.create_server(("127.0.0.1", 0)) as gcs:
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{gcs.getsockname()[1]}")
        ray_utils.init_ray()
    assert "dashboard_host" not in seen[-1] and "include_dashboard" not in seen[-1]


def test_an_embedded_ray_that_does_not_start_in_time_is_one_line_with_its_fix(tmp_path, monkeypatch, capsys):
    """Ray raises a bare ``Exception`` when its raylet has not registered within 30 s (a busy machine): the CLI,
    which says ``RuntimeError``s in one line, printed a page of traceback ending in "The current node timed out during
    startup"."""
    import ray
    import typer

    from repeval import ray_utils
    from repeval.cli.errors import _guard

    def timed_out(**kw):
        raise Exception(
            "The current node timed out during startup. This could happen because some of the raylet failed to "
            "startup or the GCS has become overloaded."
        )

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(typer.Exit) as stopped:
        _guard(ray_utils.init_ray)
    said = capsys.readouterr().err
    assert stopped.value.exit_code == 1 and said.startswith(
        "error: the Ray that repeval starts on this machine did not come up: its raylet did not register within "
        "Ray's 30 seconds — the machine is most likely too busy (`uptime` shows its load) or short of memory "
        "(`free -h`): rerun the command when it is less loaded (everything finished so far is saved) (caused by "
        "Exception: The current node timed out during startup."
    ), said
    assert len(said.strip().splitlines()) == 1, said


def test_cluster_launcher_heads_bind_the_dashboard_to_localhost():
    for name in ("aws.yaml", "gcp.yaml"):
        cfg = yaml.safe_load((REPO / "cluster" / name).read_text())
        head = " ".join(cfg["head_start_ray_commands"])
        assert "--dashboard-host=127.0.0.1" in head, name
        assert "0.0.0.0" not in head, name


def test_make_run_keeps_rays_token_authentication():
    """Ray 2.60's embedded instance listens on every interface (docs/SECURITY.md): the quickstart (`make run`)
    must not turn its token authentication off; only the test and benchmark targets do, for their own
    short-lived instances. The probe target inherits exactly the environment the `run` recipe gets."""
    import shutil
    import subprocess

    make = shutil.which("make")
    assert make, "GNU make is needed (the README's two commands are make targets)"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "MAKEFLAGS", "MAKELEVEL")}

    def recipe_env(target: str, extra: str = "") -> str:
        probe = f"{target}: ; @echo AUTH=$$RAY_AUTH_MODE"
        args = [make, "-s", "-C", str(REPO), "--eval", probe, *(["--eval", extra] if extra else []), target]
        return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.strip()

    assert recipe_env("probe-run") == "AUTH="  # what `make run` (and `make setup`) run under
    makefile = (REPO / "Makefile").read_text()
    assert "test: export RAY_AUTH_MODE ?= disabled" in makefile
    # the same target-specific line, applied to a probe target, is what `make test` runs under
    assert recipe_env("probe-test", "probe-test: export RAY_AUTH_MODE ?= disabled") == "AUTH=disabled"


def test_token_file_is_made_private(tmp_path):
    from repeval.ray_utils import restrict_token_file

    token = tmp_path / "auth_token"
    assert not restrict_token_file(token)  # none yet
    token.write_text("x" * 64)
    token.chmod(0o644)
    assert restrict_token_file(token)
    assert token.stat().st_mode & 0o777 == 0o600
    assert not restrict_token_file(token)  # already private: left alone


def embedded_ray_with_token(environ: dict[str, str]) -> Iterator[tuple[subprocess.CompletedProcess, Path]]:
    """A real embedded Ray in a fresh home directory with ``RAY_AUTH_MODE`` unset (what ``make run`` starts): its
    output and the home directory. Started as soon as the tests are collected (``ahead_fixture``): its Ray starts while
    the tests before this module run."""
    home = Path(tempfile.mkdtemp(prefix="rv-home-"))
    try:
        script = (
            "import os, subprocess, sys; os.umask(0o022)\n"
            "import ray\n"
            "from repeval.ray_utils import _kill_monitor, init_ray\n"
            "init_ray(num_cpus=1, object_store_memory=80 * 2**20)\n"
            "print('RESULT', ray.get(ray.remote(lambda: 7).remote()))\n"
            "print('WORKER_MODE', ray.get(ray.remote(lambda: os.environ.get('RAY_AUTH_MODE')).remote()))\n"
            "intruder = 'import ray; ray.init(address=%r); print(\"CONNECTED\")' % ray.get_runtime_context().gcs_address\n"
            # refused at once: no need for Ray's 20 connection attempts a second apart (a refused token stays refused)
            "env = {**os.environ, 'RAY_AUTH_MODE': 'token', 'RAY_AUTH_TOKEN': '0' * 64, 'RAY_NUM_REDIS_GET_RETRIES': '2'}\n"
            "r = subprocess.run([sys.executable, '-c', intruder], env=env, capture_output=True, text=True, timeout=120)\n"
            "print('INTRUDER', 'CONNECTED' in r.stdout, 'AuthenticationError' in r.stderr or 'InvalidAuthToken' in r.stderr)\n"
            # the monitor first, as a `repeval` command's exit does: Ray's shutdown waits a second for it otherwise
            "_kill_monitor()\n"
            "ray.shutdown()\n"
        )
        env = {k: v for k, v in environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        env["HOME"] = str(home)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        yield out, home
    finally:
        shutil.rmtree(home, ignore_errors=True)


token_ray = ahead_fixture("token_ray", embedded_ray_with_token, scope="module")


def test_embedded_ray_runs_with_token_authentication_and_a_private_token(token_ray):
    """A real embedded Ray in a fresh home directory with ``RAY_AUTH_MODE`` unset (what ``make run`` starts): token
    authentication is on (a client holding another token is refused), the token ``init_ray`` created is 0600 under
    a 022 umask (Ray writes its own with the umask), and Ray's "Token authentication is enabled ... opt out"
    WARNING, which it logs when it picks the mode itself, is not printed."""
    out, home = token_ray
    assert "RESULT 7" in out.stdout, out.stderr[-2000:]
    assert "WORKER_MODE token" in out.stdout, out.stdout
    assert "INTRUDER False True" in out.stdout, (out.stdout, out.stderr[-2000:])
    token = home / ".ray" / "auth_token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert len(token.read_text()) == 64 and int(token.read_text(), 16) >= 0  # 256 bits, hex, as Ray's own
    assert "Token authentication is enabled for this Ray cluster" not in out.stderr, out.stderr[-2000:]


def test_token_is_created_private_and_an_explicit_choice_is_kept(tmp_path):
    from repeval.ray_utils import prepare_token_auth

    home = tmp_path / "home"
    home.mkdir()
    env: dict[str, str] = {}
    made = prepare_token_auth(env, home)  # mode unset: Ray's default (token), said explicitly
    assert env["RAY_AUTH_MODE"] == "token"
    assert made == home / ".ray" / "auth_token"
    assert made.stat().st_mode & 0o777 == 0o600 and (home / ".ray").stat().st_mode & 0o777 == 0o700
    first = made.read_text()
    assert prepare_token_auth(env, home) is None and made.read_text() == first  # an existing token is kept
    assert sorted(p.name for p in (home / ".ray").iterdir()) == ["auth_token"]  # no temporary file left

    for i, user in enumerate(
        ({"RAY_AUTH_MODE": "disabled"}, {"RAY_AUTH_TOKEN": "f" * 64}, {"RAY_AUTH_TOKEN_PATH": "/elsewhere"})
    ):
        other = tmp_path / f"user{i}"
        other.mkdir()
        env = dict(user)
        assert prepare_token_auth(env, other) is None, user
        assert not (other / ".ray").exists(), user  # the user's own token or choice: nothing written
        assert env["RAY_AUTH_MODE"] == user.get("RAY_AUTH_MODE", "token")


def test_security_doc_says_what_is_trusted():
    text = (REPO / "docs" / "SECURITY.md").read_text().lower()
    for topic in (
        "configuration",
        "manifest",
        "checkpoint",
        "audio",
        "weights_only",
        "safe_load",
        "127.0.0.1",
        "store",
    ):
        assert topic in text, topic
