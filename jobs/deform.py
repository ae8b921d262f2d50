"""`ray job submit --working-dir . -- python jobs/deform.py CONFIG [--smoke-test]`: the `deform` stage."""

from _common import main

if __name__ == "__main__":
    main("deform")
