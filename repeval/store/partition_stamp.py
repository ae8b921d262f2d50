"""What a store partition was computed with: the compatibility check that refuses to mix rows of another
configuration into it (naming what differs and the fix), the stamp written before its first rows, and the audio
sources its stamp and manifest record. :class:`~repeval.store.partition.Partition` builds on it."""

from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow.compute as pc

from repeval.store.fingerprint import (
    WINDOWING_ENTRIES,
    WINDOWING_HINTS,
    StoreConflict,
    _described_diff,
    computed_twice,
    merge_sources,
    new_model_id,
)
from repeval.store.layout import MANIFEST, STAMP, _atomic_write_bytes
from repeval.store.partition_files import PartitionFiles

log = logging.getLogger("repeval.store")

#: the stamp's record that a run stopped the partition's model after it failed on each of its first tracks
#: (:func:`repeval.pipeline.failing.mark_stopped`): later runs leave the model out again, not run
STOPPED_FAILING = "stopped_failing"

#: the partition files whose unreadable ``stopped_failing`` record was said (once each per process)
_BAD_STOP_SAID: set[str] = set()


def _stop_problem(stop: Any) -> str | None:
    """What is wrong with a ``stopped_failing`` record's types (``None``: nothing)."""
    if not isinstance(stop, dict):
        return f"not an object but {type(stop).__name__}"
    checks = (
        ("error", isinstance(stop.get("error"), str), "a string"),
        ("tracks", type(stop.get("tracks")) is int and stop["tracks"] >= 1, "a whole number, 1 or more"),
        ("at", type(stop.get("at")) in (int, float), "a number (seconds since 1970)"),
        ("model_code", stop.get("model_code") is None or isinstance(stop.get("model_code"), dict), "an object or null"),
    )
    for key, ok, want in checks:
        if not ok:
            return f"{key} is {json.dumps(stop.get(key))}, not {want}"
    return None


#: why a partition of a scenario whose steps read files (``sounds_path``, ``ir_path``) differs: by whether its stamp
#: records what they held (a stamp from before repeval recorded it does not)
FILES_HINTS = {
    True: "the audio files a step of the scenario reads (sounds_path, ir_path) are not those its tracks were deformed "
    "with: one was replaced, added or removed",
    False: "repeval now records what the audio files a step of the scenario reads (sounds_path, ir_path) hold; this "
    "partition was stamped before, so which files deformed its tracks is not known",
}

#: what a conflict of a changed model says of its other scenarios (``repeval plan`` says their conflicts once)
MODEL_DIFFERS = "every scenario of this model differs alike"


def _family(fingerprint: dict[str, Any]) -> Any:
    """The registered model family a partition's fingerprint records (``None``: none)."""
    model = fingerprint.get("model")
    return model.get("family") if isinstance(model, dict) else None


class NewStamp(NamedTuple):
    """What :meth:`PartitionStamp.stamp` records in a new stamp (its arguments): a run plans it as it plans the
    partition (:meth:`PartitionStamp.plan_stamp`) and writes it as the partition's stream starts."""

    fingerprint: dict[str, Any]
    provenance: dict[str, Any] | None = None
    described: dict[str, Any] | None = None
    sources: list[dict[str, Any]] | None = None

    def body(self, held: Any = None) -> dict[str, Any]:
        """The entries it writes into a new stamp (``held``: the ``sources`` the stamp has already)."""
        body: dict[str, Any] = {**(self.provenance or {}), "fingerprint": self.fingerprint}
        if self.described:
            body["described"] = self.described
        if self.sources:
            body["sources"] = merge_sources(held, self.sources)
        return body


@dataclass
class PartitionStamp(PartitionFiles):
    """A store partition's configuration: checked against a run's (:meth:`check_compatible`), then stamped."""

    # the fingerprint :meth:`check_compatible` last accepted by the windowing rule (:meth:`_only_windowing_added`):
    # :meth:`stamp` and :meth:`restamp` need not read every part file's ``n_chunks`` again
    _windowing_accepted: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    # the stamp a run planned (:meth:`plan_stamp`), not yet written: what :meth:`stamped` says of a partition with none
    _planned: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def stamped(self) -> dict[str, Any] | None:
        """What the partition was stamped with (its manifest, else its stamp), else the stamp a run planned for it."""
        found = super().stamped()
        return found if found is not None else self._planned

    def plan_stamp(self, new: NewStamp) -> None:
        """What :meth:`stamp` will record, known now without writing it (a run stamps a partition as its model's stream
        starts): checked as the stamp would be (:meth:`check_compatible`) where the run plans the partition again — an
        experiment sharing the dataset, with the same model id computed otherwise — so that its rows never join these."""
        self._planned = new.body()

    def check_compatible(
        self, fingerprint: dict[str, Any], described: dict[str, Any] | None = None, taken: tuple[str, ...] = ()
    ) -> bool:
        """Refuse to mix rows computed under another configuration into this partition.

        Returns ``True`` when the partition differs only by keeping frames that ``fingerprint`` does not ask for
        (``keep_frames``): its rows serve such a run, but rows computed without frames must not be added to it (the
        embedding stage completes it with frames: :func:`repeval.pipeline.partition_conflicts.accepted_spec`).
        ``described`` (fingerprint key path → the value its hash stands for, as :meth:`stamp` keeps it) lets the
        error name what differs inside a hash — ``model.params.n_mfcc: stored 20, now 30`` — where the stamp has it
        too (partitions stamped before it was kept: the hashes). ``taken``: the run configuration's model ids, none of
        which the new id a conflict names is (:meth:`_new_id`)."""
        written = super().stamped()
        stamp = written if written is not None else self._planned
        if stamp is None:
            self._check_unstamped_rows(fingerprint)
            return False
        old = stamp.get("fingerprint")
        if isinstance(old, dict) and old.get("keep_frames") is True and fingerprint.get("keep_frames") is False:
            if {**old, "keep_frames": False} == fingerprint:
                return True
        if old is not None and old != fingerprint and self._only_windowing_added(old, fingerprint):
            self._windowing_accepted = fingerprint
        elif old is not None and old != fingerprint:
            diff = _described_diff(old, fingerprint, stamp.get("described"), described)
            hint = ""
            if isinstance(old, dict) and old.get("keep_frames") is False and fingerprint.get("keep_frames") is True:
                hint = (
                    " (its rows have no frame-level embeddings, which this run keeps there: a task reads this dataset "
                    "with this model with embedding_aggregation: prediction or attention, or run.keep_frames: true)"
                )
            if isinstance(old, dict):
                for k, v in WINDOWING_ENTRIES.items():
                    if k not in old and fingerprint.get(k) == v:
                        hint += f" ({WINDOWING_HINTS[k]})"
                if "files" in fingerprint and old.get("files") != fingerprint["files"]:
                    hint += f" ({FILES_HINTS['files' in old]})"
                if "seed" in old and old.get("seed") != fingerprint.get("seed"):
                    hint += (
                        " (run.seed also draws each track's deformation: another run.seed deforms the tracks anew; for "
                        f"more probe seeds on these embeddings keep run.seed: {old['seed']} and raise run.seeds)"
                    )
            if written is None:  # a stamp this run planned: nothing stored, two of its experiments differ
                model = old.get("model") != fingerprint.get("model")
                new_id = self._new_id(fingerprint, taken) if model else None
                raise StoreConflict(
                    computed_twice(self.path, diff, "an earlier experiment of the configuration", new_id)
                )
            raise StoreConflict(
                f"store partition {self.path} was computed with a different configuration — {diff}{hint}; "
                f"{self._conflict_fix(old, fingerprint, taken)}"
            )
        return False

    def _new_id(self, fingerprint: dict[str, Any], taken: tuple[str, ...]) -> str:
        """Where and how to give this partition's model a new id (:func:`~repeval.store.fingerprint.new_model_id`): one
        that neither ``taken`` (the configuration's model ids) nor a model folder of the store holds, whose partitions
        would refuse the model's rows too (a store that cannot be listed: the configuration's ids alone)."""
        return new_model_id(self.model, _family(fingerprint), [*taken, *self.store.model_folders()])

    def _conflict_fix(self, old: Any, fingerprint: dict[str, Any], taken: tuple[str, ...] = ()) -> str:
        """How to go on from a partition stamped ``old``: when the model differs, every scenario of it differs alike
        (the run stops at the first), so the id to give it and the command that deletes them all are named too."""
        if not (isinstance(old, dict) and old.get("model") != fingerprint.get("model")):
            return (
                "give the model or scenario a new id, point run.store elsewhere, or delete the partition to recompute "
                f"it (`{self.rm_command()}`)"
            )
        every = f"{self.name.rsplit('/', 1)[0]}/*"
        return (
            f"give the model a new id ({self._new_id(fingerprint, taken)}), point run.store elsewhere, "
            f"or delete the partition to recompute it (`{self.rm_command()}`) — "
            f"{MODEL_DIFFERS}: `repeval store rm {shlex.quote(self.store.uri)} "
            f"{shlex.quote(every)} --yes` deletes them all"
        )

    def _only_windowing_added(self, old: Any, fingerprint: dict[str, Any]) -> bool:
        """``fingerprint`` is ``old`` plus :data:`WINDOWING_ENTRIES` only, and every stored row is one window long:
        the rows are what ``fingerprint`` computes (a track of one window is deformed alike either way)."""
        if not isinstance(old, dict):
            return False
        added = {k: v for k, v in fingerprint.items() if k not in old}
        if not added or not added.items() <= WINDOWING_ENTRIES.items():
            return False
        if {k: v for k, v in fingerprint.items() if k not in added} != old:
            return False
        for f in self.part_files():
            n_chunks = pc.max(self._column(f, "n_chunks")).as_py()
            if n_chunks is not None and n_chunks > 1:
                return False
        return True

    def _check_unstamped_rows(self, fingerprint: dict[str, Any]) -> None:
        """A partition whose ``_stamp.json`` and ``_manifest.json`` are gone (deleted by hand) but whose part files
        remain: their ``config_hash`` column says what they were computed with, and rows of another configuration are
        never added to them."""
        from repeval.config.loader import config_hash

        files = self.part_files() + self.error_files()
        if not files:
            return
        want = config_hash(fingerprint)
        found: set[str] = set()
        for f in files:
            found.update(h for h in pc.unique(self._column(f, "config_hash")).to_pylist() if h is not None)
        other = sorted(found - {want})
        if other:
            raise StoreConflict(
                f"store partition {self.path} has no {STAMP} or {MANIFEST} (deleted?) and its part files hold rows "
                f"computed with another configuration (config_hash {', '.join(other)}, now {want}); give the model or "
                "scenario a new id, point run.store elsewhere, or delete the partition to recompute it "
                f"(`{self.rm_command()}`)"
            )

    def stamp(
        self,
        fingerprint: dict[str, Any],
        provenance: dict[str, Any] | None = None,
        described: dict[str, Any] | None = None,
        sources: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the configuration a partition is computed with (once: the first run's stamp stays); ``described``
        keeps readable what the fingerprint's hashes stand for (see :meth:`check_compatible`, which a run calls
        first, on this partition). ``sources`` (where the run's dataset takes its audio from) join the stamp's
        ``sources`` however old the stamp: the partition's rows are computed from them from here on."""
        self.store.check_lock()
        existing = self._read_json(STAMP)
        if existing is None:
            body: dict[str, Any] = {"created_at": time.time()}
        elif existing.get("fingerprint") != fingerprint and self._windowing_accepted == fingerprint:
            # check_compatible accepted this stamp from before WINDOWING_ENTRIES for its one-window rows (having read
            # every part file's n_chunks: not again here); rows of several windows may join them now, so it says from
            # here on how they are computed
            body = existing
        else:
            merged = merge_sources(existing.get("sources"), sources)
            if merged != existing.get("sources"):
                _atomic_write_bytes(
                    self.fs,
                    f"{self.path}/{STAMP}",
                    json.dumps({**existing, "sources": merged}, sort_keys=True).encode(),
                )
            return
        self.fs.create_dir(self.path, recursive=True)
        body = {**body, **NewStamp(fingerprint, provenance, described, sources).body(body.get("sources"))}
        _atomic_write_bytes(self.fs, f"{self.path}/{STAMP}", json.dumps(body, sort_keys=True).encode())

    def sources(self) -> list[dict[str, Any]] | None:
        """Where the audio of the partition's rows came from: the ``sources`` of its manifest (else its stamp), each
        a dataset's source as a run that computed or reused the rows defined it (:meth:`stamp`, :meth:`add_sources`);
        ``None`` when none is recorded (a partition stamped before repeval recorded them)."""
        body = self.manifest() or self._read_json(STAMP)
        found = body.get("sources") if body else None
        return found if isinstance(found, list) and found else None

    def add_sources(self, sources: list[dict[str, Any]]) -> bool:
        """Add ``sources`` to the stamp and manifest of a partition that records where its rows came from (one that
        records none is left alone: its rows' source is not known); returns whether anything was written."""
        wrote = False
        for name in (STAMP, MANIFEST):
            body = self._read_json(name)
            if body is None or not isinstance(body.get("sources"), list):
                continue
            merged = merge_sources(body["sources"], sources)
            if merged != body["sources"]:
                text = json.dumps({**body, "sources": merged}, indent=1 if name == MANIFEST else None, sort_keys=True)
                _atomic_write_bytes(self.fs, f"{self.path}/{name}", text.encode())
                wrote = True
        return wrote

    def record(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` in the stamp and, complete, the manifest (what a run learnt of the rows' making
        after they were stamped: a plugin's code now, ``model_code``; a model stopped, ``stopped_failing``); ``None``
        removes the key."""
        for name in (STAMP, MANIFEST):
            body = self._read_json(name)
            if body is None or (body.get(key) == value and (value is not None or key not in body)):
                continue
            new = {k: v for k, v in body.items() if k != key} if value is None else {**body, key: value}
            text = json.dumps(new, indent=1 if name == MANIFEST else None, sort_keys=True)
            _atomic_write_bytes(self.fs, f"{self.path}/{name}", text.encode())

    def stopped_failing(self) -> dict[str, Any] | None:
        """The stop a run recorded of the partition's model (``stopped_failing``, :func:`repeval.pipeline.failing.
        mark_stopped`): ``error`` (str), ``tracks`` (a count, 1 or more), ``at`` (seconds since the epoch) and
        ``model_code``; ``None`` without one. One whose values are not of those types (edited by hand) is unreadable,
        as a damaged stamp is: said once in a warning naming the file and the fix, and taken as no stop — the next run
        tries the model again (a stop of that run records its own)."""
        body = self.stamped() or {}
        stop = body.get(STOPPED_FAILING)
        if stop is None:
            return None
        bad = _stop_problem(stop)
        if bad is None:
            return dict(stop)
        where = f"{self.path}/{MANIFEST if self.manifest() is not None else STAMP}"
        if where not in _BAD_STOP_SAID:
            _BAD_STOP_SAID.add(where)
            log.warning(
                "store partition %s: the %s record of %s is unreadable (%s): the model is taken as not stopped — the "
                "next run tries it again; delete the %s key from the file (a run that stops the model records it "
                "anew), or restore it as a run wrote it",
                self.name, STOPPED_FAILING, where, bad, STOPPED_FAILING,
            )  # fmt: skip
        return None

    def restamp(self, fingerprint: dict[str, Any], provenance: dict[str, Any] | None = None) -> bool:
        """Write ``fingerprint`` into the stamp and manifest of a partition that :meth:`check_compatible` has just
        accepted under it by the windowing rule (a pre-:data:`WINDOWING_ENTRIES` stamp, rows all one window), so a
        complete partition is not re-checked row by row on every later run. Returns whether it wrote anything."""
        if self._windowing_accepted != fingerprint:
            return False
        for name in (STAMP, MANIFEST):
            body = self._read_json(name)
            if body is not None and body.get("fingerprint") != fingerprint:
                body = {**body, **(provenance or {}), "fingerprint": fingerprint}
                text = json.dumps(body, indent=1 if name == MANIFEST else None, sort_keys=True)
                _atomic_write_bytes(self.fs, f"{self.path}/{name}", text.encode())
        self._windowing_accepted = None
        return True
