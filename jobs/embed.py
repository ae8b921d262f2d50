"""`ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/embed.py CONFIG
--store URI --runs-dir URI [--smoke-test]`: the `embed` stage. The store and runs dir are absolute paths every node
sees, or buckets: a job refuses relative ones (they would be written in Ray's copy of the upload)."""

from _common import main

if __name__ == "__main__":
    main("embed")
