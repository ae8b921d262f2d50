"""The device a model's ``params.device: auto`` picks: the GPU torch sees, unless Ray granted the process none. Under
``run.resources.use_gpu: never`` the embedding actors ask Ray for no GPU, and Ray then leaves ``CUDA_VISIBLE_DEVICES``
as it is: torch on a GPU node saw every GPU, and a transformers model took one (``cuda``) that the run said not to
use. No GPU here: the choice is checked at :func:`pick_device`, given what torch would report, and the grant an
embedding actor builds its model under through a real Ray actor."""

from __future__ import annotations

import textwrap

from repeval.config import EmbeddingModelConfig
from repeval.models._common import choose_device, gpu_granted, pick_device
from repeval.models.plugins import load_plugins, plugins_of
from repeval.pipeline.embedder import Embed

#: a model that records the device its ``params.device`` would pick on a node whose torch sees a GPU
DEVICE_MODEL = """
from repeval.models import EmbeddingModel, register_model
from repeval.models._common import pick_device


@register_model("device-probe")
class DeviceProbe(EmbeddingModel):
    def __init__(self, device: str = "auto"):
        super().__init__(device=device)
        self.sample_rate_hz, self.embedding_dim = 16000, 1
        self.on_gpu_node = pick_device(device, cuda_available=True)

    def embed(self, audio):
        return audio[:1, None]
"""


def test_auto_picks_the_cpu_where_the_process_was_granted_no_gpu() -> None:
    assert pick_device("auto", cuda_available=True, granted=False) == "cpu"  # use_gpu: never on a GPU node
    assert pick_device(None, cuda_available=True, granted=False) == "cpu"
    assert pick_device("auto", cuda_available=True, granted=True) == "cuda"  # an actor granted a GPU
    assert pick_device("auto", cuda_available=True) == "cuda"  # no say (a model built by validate-model, a test)
    assert pick_device("auto", cuda_available=False, granted=True) == "cpu"  # torch sees none
    assert pick_device("", cuda_available=False) == "cpu"
    assert pick_device("cuda:1", cuda_available=True, granted=False) == "cuda:1"  # asked for by name: as asked
    assert pick_device("cpu", cuda_available=True, granted=True) == "cpu"
    with gpu_granted(False):
        assert pick_device("auto", cuda_available=True) == "cpu"
        with gpu_granted(None):
            assert pick_device("auto", cuda_available=True) == "cuda"
        assert choose_device("auto") == "cpu"
    assert pick_device("auto", cuda_available=True) == "cuda"  # the grant ends with its block
    assert choose_device("cpu") == "cpu"


def test_an_embedding_actor_granted_no_gpu_builds_its_model_for_the_cpu(ray_session, tmp_path, forget_plugins) -> None:
    """An embedding actor that asked Ray for no GPU (``use_gpu: never``) builds its model on the CPU whatever GPUs
    torch sees there; the same model built outside Ray (no grant to go by) takes the GPU torch sees."""
    plugin = tmp_path / "device_model.py"
    plugin.write_text(textwrap.dedent(DEVICE_MODEL))
    plugins = plugins_of([str(plugin)])
    load_plugins(plugins)  # (the config names the model: registered here as a run's configuration does)
    mcfg = EmbeddingModelConfig(id="probe", type="device-probe")
    actor = ray_session.remote(num_cpus=0, num_gpus=0)(Embed).remote(mcfg, False, None, None, plugins)
    try:
        picked = ray_session.get(actor.__ray_call__.remote(lambda embed: embed.model.on_gpu_node), timeout=120)
    finally:
        ray_session.kill(actor)
    assert picked == "cpu"
    assert Embed(mcfg, plugins=plugins).model.on_gpu_node == "cuda"
