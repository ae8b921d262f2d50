"""Resource awareness (issue 8): GPU requests switch on when Ray reports GPUs, custom resources pin the
embedding actors, and ``repeval plan`` shows what a run will request. (What a Ray node that declares a GPU records
for a run's actors and trials: test_fake_gpu.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from repeval.config.run import ResourcesConfig
from repeval.pipeline.resources import plan_resources
from repeval.testing.configs import notes_dataset

REPO = Path(__file__).resolve().parents[2]


class GpuModel:
    uses_gpu = True


class CpuModel:
    uses_gpu = False


def test_gpu_requests_only_when_ray_reports_gpus() -> None:
    res = ResourcesConfig(embed_num_gpus=0.5)
    none = plan_resources(GpuModel, res, cluster_cpus=8, cluster_gpus=0)
    assert none.num_gpus == 0 and "num_gpus" not in none.actor_kwargs(16)
    two = plan_resources(GpuModel, res, cluster_cpus=8, cluster_gpus=2)
    assert two.num_gpus == 0.5 and two.n_actors == 4  # 0.5 GPU each: four actors on two GPUs
    assert two.actor_kwargs(16)["num_gpus"] == 0.5 and two.actor_kwargs(16)["batch_size"] == 16
    cpu_model = plan_resources(CpuModel, res, cluster_cpus=8, cluster_gpus=2)
    assert cpu_model.num_gpus == 0  # a model that gains nothing from a GPU never asks for one


def test_use_gpu_always_requests_gpus_before_any_gpu_node_is_up_and_never_keeps_to_cpus() -> None:
    from repeval.plan import make_plan
    from repeval.ray_utils import wants_gpu

    always = ResourcesConfig(embed_num_gpus=0.5, use_gpu="always")
    r = plan_resources(GpuModel, always, cluster_cpus=8, cluster_gpus=0)  # a GPU group scaled to zero
    assert r.num_gpus == 0.5 and r.n_actors == 1 and r.actor_kwargs(4)["num_gpus"] == 0.5
    assert plan_resources(GpuModel, always.model_copy(update={"embed_actors": 3}), 8, 0).n_actors == 3
    assert plan_resources(CpuModel, always, 8, 0).num_gpus == 0  # still only models that gain from a GPU
    assert plan_resources(GpuModel, always, 8, 2).n_actors == 4  # GPUs up: sized from them, as with auto
    never = ResourcesConfig(embed_num_gpus=0.5, use_gpu="never")
    assert plan_resources(GpuModel, never, cluster_cpus=8, cluster_gpus=2).num_gpus == 0
    # probe trials follow the same rule
    assert wants_gpu("always", 0.25, 0) and wants_gpu("auto", 0.25, 1)
    assert not wants_gpu("auto", 0.25, 0) and not wants_gpu("never", 0.25, 4) and not wants_gpu("always", 0, 4)
    text = make_plan(_cfg(use_gpu="always", trial_num_gpus=0.25, embed_in_decode="never")).text()
    assert "embed actor:      1 CPU + 1 GPU for GPU models (none up yet: waits for the autoscaler" in text, text
    assert "probe trial:      1 CPU + 0.25 GPU (none up yet: waits for the autoscaler" in text, text
    assert "; without RAY_ADDRESS, on a machine with no GPU, the run stops before it embeds)" in text, text
    text = make_plan(_cfg(use_gpu="never", trial_num_gpus=0.25), cluster={"CPU": 4, "GPU": 1}).text()
    assert "probe trial:      1 CPU\n" in text + "\n" and "0.25 GPU" not in text, text


def test_custom_resources_pin_and_cap_the_actor_pool() -> None:
    res = ResourcesConfig(embed_resources={"embed": 1})
    cluster = {"CPU": 3.0, "embed": 2.0}
    r = plan_resources(CpuModel, res, cluster_cpus=3, cluster_gpus=0, cluster_resources=cluster)
    assert r.n_actors == 2 and r.resources == {"embed": 1.0}  # 3 CPUs would allow 3 actors; embed=2 allows 2
    assert r.actor_kwargs(8)["resources"] == {"embed": 1.0}
    assert "embed=1" in r.describe()
    explicit = ResourcesConfig(embed_resources={"embed": 1}, embed_actors=1)
    assert plan_resources(CpuModel, explicit, 3, 0, cluster).n_actors == 1
    with pytest.raises(ValueError, match=r"ray start --resources='\{\"embed\": 1\}'"):
        plan_resources(CpuModel, res, cluster_cpus=3, cluster_gpus=0, cluster_resources={"CPU": 3.0})


def test_embed_resources_are_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="embed_num_cpus / embed_num_gpus"):
        ResourcesConfig(embed_resources={"GPU": 1})
    with pytest.raises(ValidationError, match="must be > 0"):
        ResourcesConfig(embed_resources={"embed": 0})


def _notes_config(notes: Path, tmp_path: Path, run_id: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A configuration of mfcc-stats on the rendered notes with these ``run.resources``."""
    return {
        "run": {
            "run_id": run_id,
            "store": str(tmp_path / "store"),
            "runs_dir": str(tmp_path / "runs"),
            "resources": resources,
        },
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification", "label": "instrument"},
                "datasets": [notes_dataset(notes)],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"name": "linear", "type": "classifier", "hidden_units": [], "epochs": 2}],
                "metrics": ["accuracy"],
            }
        ],
    }


def _refused_run(tmp_path: Path, cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """The one error of `repeval run` of ``cfg`` on the embedded Ray (exit status 1), checked to have embedded
    nothing: Ray starts once the streams are planned (and the partitions to fill stamped), only when there is work."""
    import yaml
    from typer.testing import CliRunner

    from repeval.cli import app

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    res = CliRunner().invoke(app, ["run", str(tmp_path / "run.yaml")])
    assert res.exit_code == 1, res.output[-3000:]
    errors = " ".join(res.stderr.split()).split("error: ")[1:]
    assert len(errors) == 1, res.output[-3000:]
    assert not list((tmp_path / "store").rglob("*.parquet")), "embedded before it stopped"
    return errors[0]


def test_probe_trials_no_node_can_hold_stop_the_run_before_it_embeds(
    ray_session: Any, rendered_notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run.resources.trial_num_cpus`` above every node's CPUs: Tune's trials waited for ever (Ray's autoscaler only
    repeating "No available node types can fulfill resource request {'CPU': 3.0}" in a job's log), after the
    embedding. Now the run stops before it embeds, naming the setting, the most a node has and the fix."""
    cpus = int(ray_session.cluster_resources()["CPU"])
    cfg = _notes_config(rendered_notes, tmp_path, "big", {"trial_num_cpus": cpus + 1})
    error = _refused_run(tmp_path, cfg, monkeypatch)
    assert error.startswith(
        f"the probe trials each ask for {cpus + 1} CPUs, but no node of this Ray cluster (1 node) has that much — "
        f"the most one has: {cpus} CPUs — so they would wait for ever: set run.resources.trial_num_cpus to at most "
        f"{cpus}, or add a node with {cpus + 1} CPUs"
    ), error


def test_use_gpu_always_on_the_embedded_ray_without_a_gpu_stops_the_run_before_it_embeds(
    ray_session: Any, rendered_notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``use_gpu: always`` and ``trial_num_gpus: 1`` on the embedded Ray of a machine without a GPU: the run embedded,
    then its trials waited for ever for a GPU node no autoscaler would add (the stream saying so once a minute). Now
    it stops before it embeds, naming the setting and the fix, as the project's other resource refusals do."""
    assert not ray_session.cluster_resources().get("GPU")
    cfg = _notes_config(rendered_notes, tmp_path, "gpu", {"use_gpu": "always", "trial_num_gpus": 1})
    error = _refused_run(tmp_path, cfg, monkeypatch)
    assert error.startswith(
        "run.resources.use_gpu is always, so the probe trials each ask for 1 GPU (run.resources.trial_num_gpus), but "
        "this machine has no GPU Ray can see (the Ray repeval started here gets no more nodes), so they would wait for "
        "ever: set run.resources.use_gpu to auto (a GPU where Ray sees one, else the CPUs), or run on a cluster with a "
        "GPU node (RAY_ADDRESS)"
    ), error


def test_a_gpu_model_under_use_gpu_always_is_refused_by_the_embedded_ray_without_a_gpu(
    ray_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``use_gpu: always`` with a model that takes a GPU (clmr-v2) on the embedded Ray of a machine without one: its
    stream started and its actor waited for ever. Refused before the stream starts now; on a cluster reached through
    ``RAY_ADDRESS`` (which may add a GPU node) the actor still waits for the autoscaler."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.resources import stream_resources

    assert not ray_session.cluster_resources().get("GPU")
    mcfg, always = EmbeddingModelConfig(id="clmr-v2"), ResourcesConfig(use_gpu="always")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError) as refused:
        stream_resources(mcfg, always)
    assert str(refused.value) == (
        "run.resources.use_gpu is always, so the embedding actor of clmr-v2 asks for 1 GPU "
        "(run.resources.embed_num_gpus), but this machine has no GPU Ray can see (the Ray repeval started here gets "
        "no more nodes), so it would wait for ever: set run.resources.use_gpu to auto (a GPU where Ray sees one, "
        "else the CPUs), or run on a cluster with a GPU node (RAY_ADDRESS)"
    )
    assert stream_resources(mcfg, ResourcesConfig(use_gpu="auto")).num_gpus == 0  # the fix it names runs
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)  # as if attached: may grow
    assert stream_resources(mcfg, always).num_gpus == 1


def test_gpu_trials_under_use_gpu_always_wait_for_the_autoscaler_whatever_their_cpus(
    ray_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``use_gpu: always`` with ``trial_num_gpus``: the trials can only go to a GPU node the autoscaler adds (one of 8
    CPUs while the live nodes have 2), so the live nodes' CPUs do not refuse them; without the GPU they still do. On
    the embedded Ray (no ``RAY_ADDRESS``), which no autoscaler adds a GPU node to, they are refused."""
    from repeval.ray_fit import check_trials_fit

    cpus = int(ray_session.cluster_resources()["CPU"])
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)  # attached: may grow
    check_trials_fit(ResourcesConfig(use_gpu="always", trial_num_gpus=1, trial_num_cpus=cpus + 6))  # no error
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ValueError, match=r"^run\.resources\.use_gpu is always, so the probe trials each ask for 1 GPU"):
        check_trials_fit(ResourcesConfig(use_gpu="always", trial_num_gpus=1))
    with pytest.raises(ValueError, match=f"set run.resources.trial_num_cpus to at most {cpus},"):
        check_trials_fit(ResourcesConfig(use_gpu="always", trial_num_cpus=cpus + 6))


def test_a_request_whose_parts_are_on_different_nodes_names_what_to_lower() -> None:
    """16-CPU nodes and 8-CPU GPU nodes (cluster/aws.yaml's types), trials of 12 CPUs and a GPU: each amount is on
    some node, so "the most one has: 16 CPUs, 1 GPU" named no setting to lower; the GPU nodes' 8 CPUs do."""
    from repeval.ray_fit import request_misfit

    nodes = [{"CPU": 0.0}, {"CPU": 16.0}, {"CPU": 8.0, "GPU": 1.0, "embed": 1.0}]
    keys = {"CPU": "run.resources.trial_num_cpus", "GPU": "run.resources.trial_num_gpus"}
    assert request_misfit("the probe trials", {"CPU": 12, "GPU": 1}, keys, nodes) == (
        "the probe trials each ask for 12 CPUs, 1 GPU, but no node of this Ray cluster (3 nodes) has all of it at "
        "once — the nodes with 1 GPU have at most 8 CPUs — so they would wait for ever: set "
        "run.resources.trial_num_cpus to at most 8, or add a node with 12 CPUs, 1 GPU (on an autoscaling cluster, "
        "raise its node type's min_workers so one is up when the run starts)"
    )
    assert request_misfit("the probe trials", {"CPU": 8, "GPU": 1}, keys, nodes) is None
    assert request_misfit("the probe trials", {"CPU": 16, "GPU": 0}, keys, nodes) is None
    # more CPUs than any node has, and a GPU: lowered to 16 they still would not fit; the GPU nodes' 8 would
    too_many = request_misfit("the probe trials", {"CPU": 20, "GPU": 1}, keys, nodes)
    assert too_many is not None and "the most one has: 16 CPUs, 1 GPU" in too_many, too_many
    assert "set run.resources.trial_num_cpus to at most 8, or add a node with 20 CPUs, 1 GPU" in too_many, too_many


def test_a_cluster_scaled_to_zero_is_left_to_its_autoscaler() -> None:
    """The head (num-cpus 0) alone, every worker group idled away (cluster/kuberay's CPU group has minReplicas 0; a
    GPU group under ``use_gpu: always`` may too): a run went on, the autoscaler adding the nodes its decode tasks and
    trials asked for. The check must not refuse it for the 0 CPUs of the live node."""
    from repeval.ray_fit import request_misfit

    keys = {"CPU": "run.resources.trial_num_cpus", "GPU": "run.resources.trial_num_gpus"}
    head = {"CPU": 0.0, "memory": 8e9, "object_store_memory": 4e9, "node:__internal_head__": 1.0}
    assert request_misfit("the probe trials", {"CPU": 1, "GPU": 0}, keys, [head]) is None
    assert (
        request_misfit("the decode tasks of clmr", {"CPU": 0.25}, keys, [{k: v for k, v in head.items() if k != "CPU"}])
        is None
    )
    # an embedded Ray of 0 CPUs (a container's CPU quota under 1, which Ray truncates) gets no node: refused
    alone = request_misfit("the probe trials", {"CPU": 1, "GPU": 0}, keys, [head], may_grow=False)
    assert alone is not None and alone.startswith("the probe trials each ask for 1 CPU, but no node"), alone


def _cfg(**resources: Any) -> Any:
    from repeval.config import load_config

    cfg = load_config(REPO / "configs" / "quickstart.yaml")
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"resources": ResourcesConfig(**resources)})})


def test_plan_reports_requests() -> None:
    from repeval.plan import make_plan

    text = make_plan(_cfg(embed_resources={"embed": 1}, trial_num_gpus=0.25)).text()
    assert "embed actor:      1 CPU + embed=1 (+ 1 GPU for GPU models when Ray reports GPUs)" in text, text
    assert "probe trial:      1 CPU (+ 0.25 GPU when Ray reports GPUs)" in text, text
    cluster = {"CPU": 4, "GPU": 1, "embed": 2, "memory": 45283700000.0, "object_store_memory": 6e8}
    on_gpus = make_plan(_cfg(embed_resources={"embed": 1}, trial_num_gpus=0.25), cluster=cluster)
    lines = on_gpus.text()
    assert "embed mfcc-stats: 2 embedding actors × 1 CPU, embed=1" in lines, lines  # CPU model: no GPU
    assert "probe trial:      1 CPU + 0.25 GPU" in lines, lines
    # Ray's byte counts in GiB (they read "memory=4.52837e+10")
    assert "cluster:          CPU=4, GPU=1, embed=2, memory=42.2 GiB, object_store_memory=0.559 GiB" in lines, lines
    missing = make_plan(_cfg(embed_resources={"embed": 1}), cluster={"CPU": 4}).text()
    assert "cannot be placed" in missing and "ray start --resources" in missing
    # where each model runs: the quickstart's handcrafted features inside the decode tasks unless a pool is asked for
    assert "models run:       mfcc-stats, logmel-stats in actor pools (embed_in_decode: auto)" in text, text
    default = make_plan(_cfg()).text()
    assert "models run:       mfcc-stats, logmel-stats inside the decode tasks (embed_in_decode: auto)" in default
    # every model inside the decode tasks: no actor, and the decode tasks are embed_num_cpus tasks (what the run does)
    assert (
        "embed actor" not in default and "decode task:      1 CPU (embed_num_cpus), as many at once as fit" in default
    )
    assert "decode task:      0.5 CPU, on one node one per CPU the actors leave free" in text, text
    fused = make_plan(_cfg(), cluster={"CPU": 4}).text()
    assert "embed mfcc-stats: model inside the decode tasks (no actor pool): tasks × 1 CPU, 4 at once" in fused, fused
    assert "embed logmel-stats: model inside the decode tasks" in fused, fused  # not "logmel-stats:model"


def test_plan_says_which_probes_use_bf16_and_whether_this_cpu_has_it(monkeypatch) -> None:
    import torch

    from repeval.plan import make_plan

    cfg = _cfg()
    assert "probe products" not in make_plan(cfg).text()  # fp32 everywhere: nothing to say
    exp = cfg.experiments[0]
    probes = (exp.downstream_models[0].model_copy(update={"precision": "bf16"}), *exp.downstream_models[1:])
    cfg = cfg.model_copy(update={"experiments": [exp.model_copy(update={"downstream_models": probes})]})
    for avx512_bf16, here in ((True, "native"), (False, "emulated, slower than fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        text = make_plan(cfg).text()
        assert f"probe products:   bf16 in 1 of 2 probe configurations (this machine's CPU: {here})" in text, text


def test_an_actor_pool_and_decode_tasks_that_fit_a_node_only_alone_are_refused(ray_session: Any) -> None:
    """``run.resources.decode_num_cpus: 2`` on a 2-CPU node beside a 1-CPU embedding actor: each request fits the node
    alone, so the run started its stream — and Ray Data, holding the actor, waited for ever to start a decode task
    ("Active & requested resources: 3/2 CPU"). Now the stream is refused before it starts, naming the setting, the
    most it can be and the fix."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.resources import stream_resources

    assert ray_session.cluster_resources()["CPU"] == 2
    mcfg = EmbeddingModelConfig(id="mfcc-stats")
    pool = {"embed_in_decode": "never"}  # mfcc-stats in an actor pool, not inside the decode tasks
    with pytest.raises(ValueError) as refused:
        stream_resources(mcfg, ResourcesConfig(decode_num_cpus=2, **pool))
    assert str(refused.value) == (
        "the embedding actor of mfcc-stats (1 CPU) and its decode tasks (2 CPUs each, run.resources.decode_num_cpus) "
        "each fit a node of this Ray cluster (1 node), but not together: beside the actor a node keeps at most 1 CPU "
        "for a decode task, so the stream would wait for ever (Ray Data starts the actor first, and no decode task "
        "could start beside it): set run.resources.decode_num_cpus to at most 1, or add a node with 2 CPUs (on an "
        "autoscaling cluster, raise its node type's min_workers so one is up when the run starts)"
    )


def test_a_stream_check_reads_the_live_nodes_once(ray_session: Any) -> None:
    """A model's stream checked its decode tasks and its actors against the live nodes, querying the GCS for them
    each time (a query per request, with the model check's own list besides): one query per check now, whatever it
    checks (ray.nodes() counted, not replaced)."""
    import ray

    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.preflight import models_on_nodes
    from repeval.pipeline.resources import stream_resources

    mcfg = EmbeddingModelConfig(id="mfcc-stats")
    pool = {"embed_in_decode": "never"}
    queries = []
    real = ray.nodes

    def counted_nodes() -> Any:
        queries.append(1)
        return real()

    ray.nodes = counted_nodes
    try:
        fits = stream_resources(mcfg, ResourcesConfig(decode_num_cpus=1, **pool))  # what the message says fits
        assert fits.n_actors == 1 and len(queries) == 1, (fits, queries)
        cfg = _cfg(**pool)
        assert not models_on_nodes(cfg, [mcfg]).problems and len(queries) == 2, queries  # once for the check too
    finally:
        ray.nodes = real


def test_a_pool_spread_over_nodes_leaves_a_decode_task_room_on_one() -> None:
    """Two 4-CPU nodes, decode tasks of 3 CPUs: two 2-CPU actors fit (one node holds both, the other the task);
    three of 1.666 CPUs cannot leave 3 CPUs on any node — the message says what either setting may be."""
    from repeval.ray_fit import pool_misfit

    nodes = [{"CPU": 4.0}, {"CPU": 4.0}]
    assert pool_misfit("clmr", {"CPU": 2.0}, 2, {"CPU": 3.0}, nodes) is None
    three = pool_misfit("clmr", {"CPU": 1.666}, 3, {"CPU": 3.0}, nodes)
    assert three is not None and three.startswith("the 3 embedding actors of clmr (1.666 CPUs each) and"), three
    assert (
        "set run.resources.decode_num_cpus to at most 2.334, or set run.resources.embed_actors to at most 2, or add a "
        "node with 3 CPUs" in three
    ), three
    # a GPU pool pinned to the GPU node: the decode task goes to the CPU node
    gpu = [{"CPU": 0.0}, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0}]
    assert pool_misfit("clmr", {"CPU": 4.0, "GPU": 1.0}, 1, {"CPU": 2.0}, gpu) is None
    # a cluster scaled to zero: its autoscaler's (as request_misfit leaves it)
    assert pool_misfit("clmr", {"CPU": 1.0}, 1, {"CPU": 2.0}, [{"CPU": 0.0}]) is None


def test_the_settings_a_refused_pool_names_make_it_fit() -> None:
    """Nodes of 2 and 1 CPUs, ``decode_num_cpus: 0.5``: three actors of 0.833 CPUs leave 0.334 beside them, and the
    refusal said "at most 0.334" — but the pool is sized from that setting, and at 0.334 its actors grew to 0.875 CPUs
    and left 0.25: refused again, with a new number. On one node of 2 CPUs, decode tasks of 1.5 beside two actors
    of 0.5: "embed_actors to at most 1" made one actor of 1 CPU, as short. What each setting it names is set to, the
    stream fits; a setting that cannot make it fit is not named."""
    import re

    from repeval.plan import make_plan

    two = ({"CPU": 3.0, "node:10.0.0.1": 1.0, "node:10.0.0.2": 1.0}, [{"CPU": 2.0}, {"CPU": 1.0}])
    one = ({"CPU": 2.0}, [{"CPU": 2.0}])

    def embed(on: tuple[dict[str, float], list[dict[str, float]]], **resources: Any) -> str:
        cfg = _cfg(embed_in_decode="never", **resources)
        return make_plan(cfg, cluster=on[0], nodes=on[1]).resources["embed mfcc-stats"]

    for on, asked, said in [
        (two, {"decode_num_cpus": 0.5}, [("decode_num_cpus", "0.25"), ("embed_actors", "2")]),
        # two actors leave 1.25 beside them; 1 fits (the steps down from 1.25 end at 1.001)
        (two, {"decode_num_cpus": 1.5}, [("decode_num_cpus", "1"), ("embed_actors", "1")]),
        (one, {"decode_num_cpus": 1.5, "embed_actors": 2}, [("decode_num_cpus", "1")]),
    ]:
        refused = embed(on, **asked)
        fixes = re.findall(r"set run\.resources\.(\w+) to at most ([\d.]+)", refused)
        assert fixes == said, refused
        for key, value in fixes:
            fixed = embed(on, **{**asked, key: float(value)})
            assert not fixed.startswith("cannot be placed"), (asked, key, value, fixed)


def test_plan_at_an_address_checks_the_requests_node_by_node_as_the_run_does(
    ray_session: Any, rendered_notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval plan --address` turned the rules into exact requests from the cluster's totals only: trials of more CPUs
    than any node has, or an actor pool and decode tasks no node holds together, were planned as if they would run —
    and `repeval run` stopped on them. The plan says they cannot be placed, and why, as the run does."""
    import yaml
    from typer.testing import CliRunner

    from repeval.cli import app

    resources = {"trial_num_cpus": 3, "decode_num_cpus": 2, "embed_in_decode": "never"}
    cfg = _notes_config(rendered_notes, tmp_path, "plan", resources)
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    gcs = ray_session.get_runtime_context().gcs_address
    res = CliRunner().invoke(app, ["plan", str(tmp_path / "plan.yaml"), "--address", gcs])
    assert res.exit_code == 0, res.output[-3000:]
    lines = res.output.splitlines()
    embed = next(ln for ln in lines if ln.startswith("  embed mfcc-stats:"))
    assert embed.startswith(
        "  embed mfcc-stats: cannot be placed: the embedding actor of mfcc-stats (1 CPU) and its decode tasks (2 CPUs "
        "each, run.resources.decode_num_cpus) each fit a node"
    ), embed
    trial = next(ln for ln in lines if ln.startswith("  probe trial:"))
    assert trial.startswith(
        "  probe trial:      3 CPU — cannot be placed: the probe trials each ask for 3 CPUs, but no node of this Ray "
        "cluster (1 node) has that much — the most one has: 2 CPUs"
    ), trial
