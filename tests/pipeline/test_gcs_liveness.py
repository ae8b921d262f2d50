"""When a stream's watch takes a cluster's GCS to be gone (:class:`~repeval.pipeline.stream_watch.GcsLiveness`): its
address refusing connections at two looks in a row, and then the GCS not answering the driver — not a GCS that takes
connections (slow or busy), not one that may restart (GCS fault tolerance), not one that answers, and never by asking
the GCS anything until its address refused. Real sockets on this machine stand in for the GCS's port."""

from __future__ import annotations

import socket
import subprocess
import sys

from repeval.pipeline.stream_watch import GcsLiveness, gcs_may_restart, refuses


def closed_port() -> str:
    """``127.0.0.1:port`` where nothing listens (a port bound and let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_a_gcs_whose_address_refuses_connections_twice_in_a_row_is_gone() -> None:
    address = closed_port()
    assert refuses(address)
    liveness = GcsLiveness(address=address, answers=lambda: False)  # nor does it answer the driver's requests
    assert liveness.gone() is None  # one refusal: a port being taken again, say
    assert liveness.gone() == f"nothing listens at {address} any longer, and it does not answer"


def test_a_gcs_that_answers_the_driver_is_not_gone_when_its_address_refuses_new_connections(ray_session) -> None:
    """A Kubernetes service whose head pod is marked not ready (its dashboard slow to answer the readiness probe)
    refuses new connections while the GCS behind it runs on and answers through the driver's own connection: the
    session's Ray's GCS answers here, an address where nothing listens stands in for the service's."""
    liveness = GcsLiveness(address=closed_port())
    assert liveness.gone() is None and liveness.gone() is None and liveness.gone() is None


def test_a_gcs_that_takes_connections_or_may_restart_is_not_gone() -> None:
    with socket.socket() as server:  # a GCS too busy to answer still takes connections
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert not refuses(address)
        busy = GcsLiveness(address=address)
        assert busy.gone() is None and busy.gone() is None
    assert not refuses("not-an-address")  # nothing said of what cannot be asked
    restarting = GcsLiveness(address=closed_port(), may_restart=True)  # fault tolerance: Ray's own wait decides
    assert restarting.gone() is None and restarting.gone() is None
    assert gcs_may_restart({"RAY_REDIS_ADDRESS": "redis:6379"})
    assert gcs_may_restart({"RAY_gcs_rpc_server_reconnect_timeout_s": "600"})  # as KubeRay sets it with Redis
    assert not gcs_may_restart({"RAY_gcs_rpc_server_reconnect_timeout_s": "60"})
    assert not gcs_may_restart({"RAY_gcs_rpc_server_reconnect_timeout_s": "soon"})
    assert not gcs_may_restart({})


def test_the_gcs_process_of_the_commands_own_ray_is_gone_once_it_ended() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    liveness = GcsLiveness(process=process)
    process.wait()
    assert liveness.gone() == f"its process (pid {process.pid}) ended with exit status 3"
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert GcsLiveness(process=running).gone() is None
    finally:
        running.kill()
        running.wait()


def test_a_gcs_that_keeps_its_tables_in_rocksdb_may_restart() -> None:
    """Ray 2.60's GCS fault tolerance without Redis: the head's GCS keeps its tables on its disk
    (``RAY_gcs_storage=rocksdb``, inherited by a ``ray job submit`` driver) and comes back after a restart."""
    assert gcs_may_restart({"RAY_gcs_storage": "rocksdb", "RAY_gcs_storage_path": "/data/gcs"})
    assert not gcs_may_restart({"RAY_gcs_storage": "memory"})  # Ray's default: a GCS restarted knows nothing
