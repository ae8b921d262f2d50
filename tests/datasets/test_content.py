"""The digest of a sample of a data set's audio content that the store's sources record (``audio.content``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from repeval.datasets import content
from repeval.datasets.content import ContentSample
from repeval.testing.badaudio import write_good


def digest(files: dict[str, Path], sizes: dict[str, int] | None = None) -> str | None:
    sample = ContentSample()
    for tid, path in files.items():
        sample.add(tid, str(path), (sizes or {}).get(tid) or path.stat().st_size)
    return sample.digest()


def test_the_sample_is_the_same_files_wherever_they_lie_and_in_any_order_and_tells_their_content(tmp_path, monkeypatch):
    monkeypatch.setattr(content, "SAMPLE_FILES", 3)
    monkeypatch.setattr(content, "EDGE_BYTES", 256)  # files of ~1.6 kB: their start and end, not the whole file
    a = tmp_path / "a"
    a.mkdir()
    files = {f"t-{i}": a / f"t-{i}.wav" for i in range(8)}
    for i, path in enumerate(files.values()):
        write_good(path, 0.1, 220.0 + 20 * i, seed=i)
    base = digest(files)
    assert base is not None and digest({}) is None
    assert digest(dict(reversed(list(files.items())))) == base
    shutil.copytree(a, tmp_path / "b")
    assert digest({t: tmp_path / "b" / p.name for t, p in files.items()}) == base  # a copy elsewhere: the same
    sampled = sorted(files, key=content._key)[:3]
    other = next(t for t in files if t not in sampled)
    size = files[other].stat().st_size
    write_good(files[other], 0.1, 990.0, seed=9)  # outside the sample: not told (a whole set rewritten is)
    assert files[other].stat().st_size == size and digest(files) == base
    write_good(files[sampled[0]], 0.1, 990.0, seed=9)  # a sampled file rendered again at the same size
    assert files[sampled[0]].stat().st_size == size and digest(files) != base
    sizes = {t: p.stat().st_size for t, p in files.items()}
    files[sampled[1]].unlink()  # gone since the loader's stat: counted as unreadable, no error
    assert digest(files, sizes) not in (base, None)
