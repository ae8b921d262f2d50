"""`ray job submit --working-dir . -- python jobs/embed.py CONFIG [--smoke-test]`: the `embed` stage."""

from _common import main

if __name__ == "__main__":
    main("embed")
