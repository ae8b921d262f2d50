"""`ray job submit --working-dir . -- python jobs/train.py CONFIG [--smoke-test]`: the `train` stage."""

from _common import main

if __name__ == "__main__":
    main("train")
