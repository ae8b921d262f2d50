"""`ray job submit --working-dir . -- python jobs/run.py CONFIG [--smoke-test]`: the `run` stage."""

from _common import main

if __name__ == "__main__":
    main("run")
