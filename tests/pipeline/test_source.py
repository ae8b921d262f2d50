"""The stream's head: the to-do table as a Ray Data source (repeval.pipeline.source) and the block size policy."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from repeval.pipeline.source import RowsPayload, block_slices
from repeval.pipeline.stream import MAX_BLOCK_ROWS, MAX_STREAM_BLOCKS, block_rows
from repeval.testing.configs import notes_dataset


def todo(n: int) -> pa.Table:
    i = np.arange(n)
    offsets = np.concatenate([[0], np.cumsum(1 + (i % 3 == 0))]).astype(np.int32)
    values = np.concatenate([[0, 1] if k % 3 == 0 else [0] for k in i]).astype(np.int16) if n else np.zeros(0, np.int16)
    return pa.table(
        {
            "track_id": pa.array([f"t{k:05d}" for k in i], pa.string()),
            "audio_path": pa.array([f"/audio/{k % 7}/t{k:05d}.flac" for k in i], pa.string()),
            "split": pa.array(np.where(i % 10 < 8, "train", "test"), pa.string()),
            "scenarios": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int16())),
        }
    )


@pytest.mark.parametrize(
    "n, size, tail",
    [(0, 5, 0), (1, 5, 0), (10, 5, 0), (11, 5, 0), (64, 64, 0), (65, 64, 0), (2000, 64, 0), (2000, 64, 4)],
)
def test_block_slices_cover_the_rows_once_in_order(n, size, tail):
    slices = block_slices(n, size, tail)
    covered = [r for off, length in slices for r in range(off, off + length)]
    assert covered == list(range(n))
    assert all(0 < length <= size for _, length in slices)


def test_blocks_are_even_and_the_last_ones_half_as_long():
    """An actor pool's actors take blocks as they free up: the last blocks are half as long (2,000 rows in blocks of at
    most 64 with four such: 30 of 62–63, then 31–32), the others even (not 31 of 64 and one of 16), the longer first;
    a short stream, whose blocks would have fewer than four rows, has even blocks only."""
    assert [n for _, n in block_slices(2000, 64, 4)] == [63] * 15 + [62] * 15 + [32, 31, 31, 31]
    assert [n for _, n in block_slices(2000, 64)] == [63] * 16 + [62] * 16
    assert [n for _, n in block_slices(65, 64)] == [33, 32]
    assert [n for _, n in block_slices(400, 50, 4)] == [50] * 6 + [25] * 4  # one block more than without the tail
    assert [n for _, n in block_slices(10, 2, 4)] == [2] * 5


def test_blocks_cover_the_rows_and_the_last_ones_are_shorter_but_not_below_their_least():
    """Over many stream lengths: every row once, in order, in blocks of at most ``block_rows``; the blocks even
    (lengths one row apart) but for at most ``tail`` last ones, shorter, even among themselves, of ``tail_min`` rows
    or more."""
    for n in range(0, 400, 3):
        for size, tail, tail_min in [(5, 4, 1), (13, 4, 6), (13, 4, 7), (64, 4, 32), (16, 8, 3), (7, 200, 2)]:
            slices = block_slices(n, size, tail, tail_min)
            lengths = [length for _, length in slices]
            assert [off for off, _ in slices] == [sum(lengths[:i]) for i in range(len(lengths))]
            assert sum(lengths) == n and all(0 < length <= size for length in lengths), (n, size, tail, lengths)
            last = [length for length in lengths if length < lengths[0] - 1]
            others = lengths[: len(lengths) - len(last)]
            assert max(others, default=0) - min(others, default=0) <= 1, lengths
            assert not last or (lengths[-len(last) :] == last and len(last) <= tail and max(last) - min(last) <= 1)
            assert min(last, default=tail_min) >= tail_min, (n, size, tail, tail_min, lengths)


def test_block_slices_reject_an_empty_block():
    with pytest.raises(ValueError, match="at least 1"):
        block_slices(10, 0)


def test_block_rows_policy():
    # a short stream: at least four blocks per CPU; a medium one: MAX_BLOCK_ROWS; a catalog: at most MAX_STREAM_BLOCKS
    assert block_rows(10, 2) == 2
    assert block_rows(2_000, 2) == MAX_BLOCK_ROWS
    for n in (MAX_BLOCK_ROWS * MAX_STREAM_BLOCKS + 1, 1_000_000, 12_345_678):
        size = block_rows(n, 2)
        assert size > MAX_BLOCK_ROWS and -(-n // size) <= MAX_STREAM_BLOCKS and -(-n // (size - 1)) > MAX_STREAM_BLOCKS


def test_a_payload_pickles_only_its_slice_compressed():
    table = todo(10_000)
    part = table.slice(4_000, 64)
    data = pickle.dumps(RowsPayload(part))
    back = pickle.loads(data).table
    assert back.equals(part) and back.schema == table.schema
    # the slice's own bytes (not the parent table's buffers), compressed
    assert len(data) < part.nbytes < table.nbytes / 100


def test_read_todo_is_one_task_per_block_fused_into_the_next_stage(ray_session):
    from repeval.pipeline.source import read_todo

    table = todo(100)

    def look(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # a stand-in decode stage
        return {
            "first": np.array([batch["track_id"][0]]),
            "rows": np.array([len(batch["track_id"])]),
            "ids": np.array([",".join(batch["track_id"])]),
            "n_scenarios": np.array([sum(len(s) for s in batch["scenarios"])]),
        }

    ds = read_todo(table, 16, num_cpus=1).map_batches(look, batch_size=None, num_cpus=1)
    out = ds.take_all()
    # one batch per block (even blocks: 15 and 14 rows), no block split or merged
    assert sorted(r["rows"] for r in out) == sorted([15] * 2 + [14] * 5)
    ids = [i for r in sorted(out, key=lambda r: r["first"]) for i in r["ids"].split(",")]
    assert ids == table.column("track_id").to_pylist()  # every row exactly once
    assert sum(r["n_scenarios"] for r in out) == len(table.column("scenarios").combine_chunks().values)
    assert "ReadTodo->MapBatches(look)" in ds.stats()  # the read runs inside the stage's tasks


def _planned_todo(rendered_notes: Path, root: Path, monkeypatch) -> pa.Table:
    """The to-do table a run's embedding stream would read (two deformations of the test split, two models)."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.pipeline import embed

    cfg = {
        "run": {"run_id": "plan", "store": str(root / "store"), "runs_dir": str(root / "runs")},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(rendered_notes, split_column=None, split_ratios=[0.5, 0.25, 0.25])],
                "deformations": [
                    [{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 1}}],
                    [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 20, "p": 1}}],
                ],
                "embedding_models": ["mfcc-stats", "chroma-stats"],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    root.mkdir()
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    planned: dict[str, pa.Table] = {}

    def record(cfg, st, store, summary, progress):  # stands in for running the stream: planning is the subject
        planned[st.mcfg.id] = st.todo.table()

    monkeypatch.setattr(embed, "_run_stream", record)
    runner.stage_embed(runner.make_context(load_config(path)), progress=False)
    return planned


def test_a_stream_to_do_planned_in_partitions_equals_the_in_memory_plan(rendered_notes, tmp_path, monkeypatch):
    """Planned 8 rows at a time into a spill file (memory-mapped, unlinked), the to-do is the in-memory one:
    the same tracks in the same order with the same scenario indices into the stream's partitions."""
    from repeval.datasets import spill

    whole = _planned_todo(rendered_notes, tmp_path / "a", monkeypatch)
    spill_dir = tmp_path / "spill"
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(spill_dir))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 8)
    parts = _planned_todo(rendered_notes, tmp_path / "b", monkeypatch)
    assert set(whole) == set(parts) == {"mfcc-stats", "chroma-stats"}
    for model, table in whole.items():
        assert table.num_rows == 48 and parts[model].equals(table), model
        n_test = table.column("split").to_pylist().count("test")
        scen = table.column("scenarios").to_pylist()
        assert sum(len(s) for s in scen) == 48 + 2 * n_test and n_test > 0  # clean, plus D1 and D2 of the test split
        address = parts[model].column("track_id").chunk(0).buffers()[2].address
        mapped = [ln for ln in Path("/proc/self/maps").read_text().splitlines() if "repeval-table-" in ln]
        assert any(int(ln.split("-")[0], 16) <= address < int(ln.split()[0].split("-")[1], 16) for ln in mapped)
    del parts
    assert list(spill_dir.iterdir()) == []


def test_a_decode_task_hands_on_its_audio_in_blocks_of_bounded_size(ray_session, tmp_path):
    """In a stream's dataset (:func:`repeval.pipeline.stream.stream_settings`) each decode batch of ``MAX_BATCH_SAMPLES``
    is a block of its own, so an embedding actor gets at most that much audio per call. With Ray Data's default target
    (128 MiB) a task's batches are buffered into one block — here four 160-s tracks, 2.4 batches' worth: one block,
    the case that made six 3-minute tracks one 13-s MusiCNN call. The setting is the dataset's own: the process'
    ``DataContext``, and a dataset made after it, keep Ray Data's default."""
    import soundfile as sf
    from ray.data import DataContext

    from repeval.pipeline.source import read_todo
    from repeval.pipeline.stages import MAX_BATCH_SAMPLES, DecodeDeform
    from repeval.pipeline.stream import STREAM_BLOCK_BYTES, stream_settings

    sr, seconds = 16000, 160.0
    rng = np.random.default_rng(0)
    paths = []
    for k in range(4):
        p = tmp_path / f"long{k}.wav"
        sf.write(p, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr, subtype="FLOAT")
        paths.append(str(p))
    table = pa.table(
        {
            "track_id": [f"long{k}" for k in range(4)],
            "audio_path": paths,
            "split": ["train", "train", "validation", "test"],
            "scenarios": pa.array([[0]] * 4, pa.list_(pa.int16())),
        }
    )

    def blocks(stream: bool) -> list[int]:  # the decode stage's output blocks: samples in each
        decode = DecodeDeform(sr, {}, 0, chunk_s=30.0)
        ds = read_todo(table, 4, num_cpus=1)
        if stream:
            ds = stream_settings(ds, progress=False)
            assert ds.context.target_max_block_size == STREAM_BLOCK_BYTES
        ds = ds.map_batches(decode, batch_size=None, num_cpus=1)
        out = []
        for bundle in ds.iter_internal_ref_bundles():
            for ref in bundle.block_refs:
                out.append(int(pa.compute.sum(pa.compute.list_value_length(ray.get(ref).column("audio"))).as_py()))
        return out

    import ray

    default = DataContext.get_current().target_max_block_size
    total = 4 * int(sr * seconds)
    assert blocks(stream=False) == [total]  # Ray Data's default: the task's three batches in one block
    inside = blocks(stream=True)
    assert DataContext.get_current().target_max_block_size == default  # the process' context untouched
    assert blocks(stream=False) == [total]
    assert sum(inside) == total and len(inside) == 3  # 4.48 M, 4.48 M, 1.28 M samples: one block per batch
    assert max(inside) <= MAX_BATCH_SAMPLES + int(sr * 30.0 * 1.5)  # a batch: the threshold plus one window at most
