"""A run, stage by stage (:mod:`repeval.runner` is its front door and re-exports what the commands use).

- :mod:`~repeval.run.context`: :class:`~repeval.run.context.RunContext` and the names of a run's groups;
  ``--smoke-test``'s configuration.
- :mod:`~repeval.run.rows`: the datasets loaded, their splits saved, checked and reported.
- :mod:`~repeval.run.load_records`: what their loads found, a record per dataset and finding (``load_report.json``),
  which the run, ``repeval plan``, ``repeval runs`` and the report each say once.
- :mod:`~repeval.run.embed`, :mod:`~repeval.run.train`, :mod:`~repeval.run.evaluate`: the stages.
- :mod:`~repeval.run.split_check`: a split or fold without tracks to train or test on, said before training.
- :mod:`~repeval.run.groups`: what a probe grid is trained on and whether it is done for it.
- :mod:`~repeval.run.files`: a run directory's small files, written whole or not at all.
- :mod:`~repeval.run.left_out`: the embedding models a run left out while the others went on.
- :mod:`~repeval.run.status`: the run's state (``status.json``), which each command records and ``repeval runs`` reads.
"""
