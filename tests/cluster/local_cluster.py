"""A Ray cluster of real processes on loopback for the multi-node tests (test_multinode.py): ``ray start --block``
processes, each node in its own process session with its own free ports, so a test can crash one node (SIGKILL of its
raylet, agents and workers) and start a replacement. Nodes listen on distinct loopback addresses (127.0.0.2 for the
head, 127.0.0.3, 127.0.0.4, ... for workers): Ray rewrites "127.0.0.1"/"localhost" to the machine's network address,
but keeps any other loopback address as given, so no traffic leaves the loopback interface. Token authentication is
explicitly disabled on every node (``RAY_AUTH_MODE=disabled``), as the head would otherwise turn it on when a token
file exists."""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEAD_IP = "127.0.0.2"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
#: how often the waits re-ask the GCS or the jobs API (each asks over loopback HTTP in a few milliseconds)
POLL_S = 0.1


#: the ports :func:`free_port` gave out in this process: never given twice
_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now that this process has not been given before. Each node's ports are picked here before its
    processes bind them, so one node's could be another's, picked earlier and not yet bound: a worker node's raylet
    then sent its runtime-env request to another node's metrics server (HTTP 405, the actor's runtime env failed)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


class LocalNode:
    """One ``ray start --block`` process and everything it started (raylet, agents, workers)."""

    def __init__(self, name: str, ip: str, proc: subprocess.Popen, log: Path) -> None:
        self.name, self.ip, self.proc, self.log = name, ip, proc, log

    def processes(self) -> list[Any]:
        import psutil
        import ray  # noqa: F401  (puts Ray's vendored psutil on sys.path)

        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the node's whole process tree: what a crashed machine looks like to the rest of the cluster."""
        import psutil
        import ray  # noqa: F401

        procs = self.processes()
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:  # and whatever is left in the node's own session (started with start_new_session=True)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        psutil.wait_procs(procs, timeout=30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class LocalCluster:
    """A Ray cluster of real processes on loopback: ``start_head()``, ``add_worker()``, ``ray job submit``."""

    def __init__(self, root: Path, environ: dict[str, str]) -> None:
        self.root = root
        self.nodes: list[LocalNode] = []
        self._worker_ips = (f"127.0.0.{i}" for i in range(3, 250))
        self._port_base = random.randrange(20000, 28000, 500)
        env = {k: v for k, v in environ.items() if not k.startswith("RAY_")}
        env.update(
            {
                "RAY_AUTH_MODE": "disabled",  # explicit: the head enables token auth when a token file exists
                "TMPDIR": str(root),  # Ray's default temp dir, Tune's lock files, repeval's staging dirs
                "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}",  # `python` in a job is this venv's
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_agent_register_timeout_ms": "180000",  # slow agents on a busy 2-core machine
                # a SIGKILLed node is found dead by the GCS's health checks: after 5 failed checks 3 s apart by
                # default (the crash test waited those ~15 s before Ray restarted its actors); after 2 checks 1 s
                # apart here (~2 s). A live raylet still answers each within health_check_timeout_ms (10 s, unchanged)
                "RAY_health_check_period_ms": "1000",
                "RAY_health_check_failure_threshold": "2",
                "RAY_DEDUP_LOGS": "0",
            }
        )
        self.env = env
        self.gcs_address = ""
        self.dashboard = ""

    def _ports(self) -> list[str]:
        lo = self._port_base + 120 * len(self.nodes)  # disjoint worker-port ranges, outside the ephemeral range
        return [
            *("--node-manager-port", str(free_port()), "--object-manager-port", str(free_port())),
            *("--dashboard-agent-grpc-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())),
            *("--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())),
            *("--min-worker-port", str(lo), "--max-worker-port", str(lo + 99)),
        ]

    def _start(self, name: str, ip: str, args: list[str]) -> LocalNode:
        log = self.root / f"{name}.log"
        cmd = [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", "--node-ip-address", ip]
        cmd += [*args, "--object-store-memory", str(200 * 2**20), *self._ports()]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = LocalNode(name, ip, proc, log)
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int = 1) -> LocalNode:
        def start() -> LocalNode:
            gcs, dash = free_port(), free_port()
            head = self._start(
                "head",
                HEAD_IP,
                [
                    *("--head", "--port", str(gcs), "--num-cpus", str(num_cpus), "--resources", "{}"),
                    *("--temp-dir", str(self.root / "ray"), "--include-dashboard", "true"),
                    *("--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)),
                    *("--ray-client-server-port", str(free_port())),
                ],
            )
            self.gcs_address = f"{HEAD_IP}:{gcs}"
            self.dashboard = f"http://127.0.0.1:{dash}"
            self.wait_for_node(head)
            self._wait_for_jobs_api(head)
            return head

        return self._retry(start)

    def add_worker(self, num_cpus: int = 2, resources: dict[str, float] | None = None, num_gpus: int = 0) -> LocalNode:
        """A worker node; ``num_gpus`` GPUs it declares (Ray takes the number as given: no device behind them)."""

        def start() -> LocalNode:
            ip = next(self._worker_ips)
            # a temp dir of its own, like a machine of its own: nodes sharing one would share the session's
            # runtime_resources/ and delete each other's unpacked working_dir (the job driver's cwd)
            args = ["--address", self.gcs_address, "--num-cpus", str(num_cpus), "--temp-dir", str(self.root / ip)]
            args += ["--num-gpus", str(num_gpus)]
            node = self._start(f"worker-{ip}", ip, [*args, "--resources", json.dumps(resources or {})])
            self.wait_for_node(node)
            return node

        return self._retry(start)

    def _retry(self, start: Any, attempts: int = 5) -> LocalNode:
        """Start a node, again if it fails: on a loaded machine the raylet gives up when its dashboard agent
        takes more than ~15 s to start (not configurable in Ray 2.60) — the `until ray start ...` idiom."""
        for attempt in range(attempts):
            try:
                return start()
            except (RuntimeError, TimeoutError):
                self.nodes[-1].kill()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def alive_nodes(self) -> list[Any]:
        from ray.util.state import list_nodes

        try:
            nodes = list_nodes(address=self.dashboard, raise_on_missing_output=False)
        except Exception:  # the dashboard is still starting
            return []
        return [n for n in nodes if n.state == "ALIVE"]

    def node_id(self, node: LocalNode) -> str:
        (found,) = [n.node_id for n in self.alive_nodes() if n.node_ip == node.ip]
        return found

    def wait_for_node(self, node: LocalNode, timeout: float = 300) -> None:
        """Until the GCS lists ``node`` (by its address) as alive; fails early if its ``ray start`` exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {node.name} exited with {node.proc.returncode}:\n{node.log_tail()}")
            if any(n.node_ip == node.ip for n in self.alive_nodes()):
                return
            time.sleep(POLL_S)
        raise TimeoutError(f"node {node.name} not alive after {timeout:.0f} s:\n{node.log_tail()}")

    def _wait_for_jobs_api(self, head: LocalNode, timeout: float = 300) -> None:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                JobSubmissionClient(self.dashboard).list_jobs()
                return
            except Exception as exc:
                if time.monotonic() > deadline or head.proc.poll() is not None:
                    raise RuntimeError(f"the jobs API at {self.dashboard} did not come up: {exc}") from exc
                time.sleep(POLL_S)

    # --- jobs ---------------------------------------------------------------------------------

    def submit(
        self,
        entrypoint: list[str],
        working_dir: Path,
        runtime_env: dict[str, Any],
        submission_id: str,
        cli: bool = True,
    ) -> None:
        """``ray job submit --address http://127.0.0.1:<dashboard> --working-dir DIR -- ENTRYPOINT`` (the command the
        docs give); ``cli=False``: the same job through ``JobSubmissionClient.submit_job`` in this process, as the
        command submits it (the working dir uploaded, the entrypoint shell-joined) without its ~2 s of start-up."""
        if not cli:
            from ray.job_submission import JobSubmissionClient

            env = {**runtime_env, "working_dir": str(working_dir)}
            client = JobSubmissionClient(self.dashboard)
            client.submit_job(entrypoint=shlex.join(entrypoint), submission_id=submission_id, runtime_env=env)
            return
        cmd = [str(BIN / "ray"), "job", "submit", "--address", self.dashboard, "--submission-id", submission_id]
        cmd += ["--working-dir", str(working_dir), "--runtime-env-json", json.dumps(runtime_env), "--no-wait"]
        r = subprocess.run([*cmd, "--", *entrypoint], env=self.env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"ray job submit failed:\n{r.stdout}\n{r.stderr}"

    def jobs(self) -> Any:
        """The head's jobs API: one client per dashboard address, not one per poll (a new client asks the dashboard
        its version first: ~9 ms of CPU a status poll, this process' and the head's, against ~4 ms — every 0.1 s
        while a test waits for a job)."""
        return _jobs_client(self.dashboard)

    def job_status(self, submission_id: str) -> str:
        return str(self.jobs().get_job_status(submission_id).value)

    def wait_job(self, submission_id: str, timeout: float = 1500) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.job_status(submission_id)
            if status in TERMINAL:
                return status
            time.sleep(POLL_S)
        raise TimeoutError(
            f"job {submission_id} not finished after {timeout:.0f} s:\n{self.logs(submission_id)[-3000:]}"
        )

    def logs(self, submission_id: str) -> str:
        return str(self.jobs().get_job_logs(submission_id))

    def exit_code(self, submission_id: str) -> int | None:
        """The exit status of the job's driver (None: killed, as ``ray job stop`` may)."""
        return self.jobs().get_job_info(submission_id).driver_exit_code

    def job_id(self, submission_id: str) -> str:
        return str(self.jobs().get_job_info(submission_id).job_id)

    def actors(self, class_contains: str, job_id: str | None = None) -> list[Any]:
        from ray.util.state import list_actors

        found = list_actors(address=self.dashboard, detail=True, limit=10000, raise_on_missing_output=False)
        return [a for a in found if class_contains in a.class_name and (job_id is None or a.job_id == job_id)]

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            node.kill()

    def remove_worker(self, node: LocalNode, timeout: float = 120) -> None:
        """Take a worker node out of the cluster for good: ``ray stop``'s SIGTERM (the node drains and leaves
        the GCS at once, where a SIGKILLed one stays listed until its health checks time out), SIGKILL for
        whatever is left, then wait until the GCS no longer lists it, so that the next test's actors cannot
        be placed on it."""
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
            try:
                node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        node.kill()
        deadline = time.monotonic() + timeout
        while any(n.node_ip == node.ip for n in self.alive_nodes()):
            assert time.monotonic() < deadline, f"node {node.name} still alive {timeout:.0f} s after it was stopped"
            time.sleep(POLL_S)

    def leftovers(self, root: Path | None = None) -> list[Any]:
        """Processes still running that belong to this cluster (their command line names its unique root),
        or to the part of it under ``root`` (a worker node's temp dir)."""
        import psutil
        import ray  # noqa: F401

        mine = re.compile(re.escape(str(root or self.root)) + r"(?![\w.])")  # not 127.0.0.3 for 127.0.0.30
        return [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.pid != os.getpid() and any(mine.search(arg) for arg in p.info["cmdline"] or ())
        ]


@functools.cache
def _jobs_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)
