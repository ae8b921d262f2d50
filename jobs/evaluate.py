"""`ray job submit --working-dir . -- python jobs/evaluate.py CONFIG [--smoke-test]`: the `evaluate` stage."""

from _common import main

if __name__ == "__main__":
    main("evaluate")
