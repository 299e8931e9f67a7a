"""A two-node Docker Swarm on this one machine, for the Swarm runner's tests and benchmark.

Two dockerds of our own (never the shared one): each with its own data root, exec root, pid file and
unix socket under a temporary directory, no bridge and no iptables (so a task attached to no network
has a loopback interface only), the swarm advertised and listening on two loopback addresses of a
random 127.x.y.0/24 (…2 for the manager, …3 for the worker), so that two runs at once do not meet.
Both engines get the runner image from the shared engine (``docker save`` → ``load``).
:meth:`TwoNodeSwarm.close` leaves the swarm, stops both daemons and removes their directories,
whatever state they are in.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: node label the tests constrain attempts with (the worker carries it, the manager does not)
ROLE_LABEL = "anyon-test.role"


def prerequisites() -> str | None:
    """Why a private swarm cannot be started here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "starting a dockerd needs root"
    if shutil.which("dockerd") is None:
        return "no dockerd binary on PATH"
    return None


class Engine:
    """One dockerd of our own."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.sock = self.dir / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        #: dockerd options for a TLS listener besides the unix socket (see :func:`make_tls`)
        self.tls_args: list[str] = []

    def start(self) -> None:
        log = open(self.dir / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
        self.proc = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={self.dir / 'data'}",
                f"--exec-root={self.dir / 'exec'}",
                f"--pidfile={self.dir / 'dockerd.pid'}",
                f"--host={self.url}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--log-level=warn",
                *self.tls_args,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api.ping()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not start: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "dockerd.log").read_text(errors="replace")[-2000:]
        return ""

    @property
    def api(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.APIClient(base_url=self.url, version="auto", timeout=60)
        return self._client

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop the daemon (SIGTERM: it stops its containers first), then SIGKILL if it lingers."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """Freeze the daemon: its connections stay open and nothing answers (a node cut off the network)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def node_id(self) -> str:
        return str(self.api.info()["Swarm"]["NodeID"])

    def anyon_containers(self) -> list[dict[str, Any]]:
        return list(self.api.containers(all=True, filters={"label": "anyon.managed=1"}))


class TwoNodeSwarm:
    """A manager and a worker engine joined in one swarm; see the module docstring."""

    def __init__(self, image: str) -> None:
        # short: a unix socket path must fit in 108 bytes
        self.root = Path(tempfile.mkdtemp(prefix="anyon-swarm-", dir="/tmp"))
        self.image = image
        self.manager = Engine(self.root, "m")
        self.worker = Engine(self.root, "w")
        self.worker_id = ""
        self.manager_id = ""
        self.tls_dir = ""
        self.worker_tcp = ""
        net = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}"
        self.manager_addr, self.worker_addr = f"{net}.2", f"{net}.3"

    def start(self) -> None:
        import docker

        # the worker's engine also listens on TCP with TLS (client certificates required): the runner
        # reaches it there, as a server reaches a remote node; the tests' own clients use its socket
        self.tls_dir, self.worker.tls_args = make_tls(self.root / "tls", self.worker_addr)
        self.worker_tcp = f"tcp://{self.worker_addr}:2376"
        self.manager.start()
        self.worker.start()
        self._load_image()
        self.manager.api.init_swarm(
            advertise_addr=self.manager_addr, listen_addr=f"{self.manager_addr}:2377", force_new_cluster=False
        )
        token = self.manager.api.inspect_swarm()["JoinTokens"]["Worker"]
        self.worker.api.join_swarm(
            [f"{self.manager_addr}:2377"],
            token,
            listen_addr=f"{self.worker_addr}:2377",
            advertise_addr=self.worker_addr,
        )
        self.manager_id, self.worker_id = self.manager.node_id(), self.worker.node_id()
        self.label(self.manager_id, {"anyon.engine": self.manager.url, ROLE_LABEL: "manager"})
        self.label(self.worker_id, {"anyon.engine": self.worker_tcp, ROLE_LABEL: "worker"})
        self.wait_ready(self.worker_id)
        del docker

    def _load_image(self) -> None:
        import docker

        shared = docker.APIClient(version="auto", timeout=120)
        try:
            data = b"".join(shared.get_image(self.image))
        finally:
            shared.close()
        for engine in (self.manager, self.worker):
            for _ in engine.api.load_image(data):
                pass

    def label(self, node_id: str, labels: dict[str, str]) -> None:
        node = self.manager.api.inspect_node(node_id)
        spec = node["Spec"]
        spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
        self.manager.api.update_node(node_id, node["Version"]["Index"], spec)

    def set_availability(self, node_id: str, availability: str) -> None:
        node = self.manager.api.inspect_node(node_id)
        spec = {**node["Spec"], "Availability": availability}
        self.manager.api.update_node(node_id, node["Version"]["Index"], spec)

    def node_state(self, node_id: str) -> str:
        return str(self.manager.api.inspect_node(node_id)["Status"]["State"])

    def wait_ready(self, node_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.node_state(node_id) != "ready":
            assert time.monotonic() < deadline, f"node {node_id} is not ready"
            time.sleep(0.2)

    def services(self, instance: str) -> list[dict[str, Any]]:
        return list(self.manager.api.services(filters={"label": f"anyon.instance={instance}"}))

    def close(self) -> None:
        for engine in (self.worker, self.manager):
            engine.resume()
            if engine.proc is not None and engine.proc.poll() is None:
                with contextlib.suppress(Exception):
                    engine.api.leave_swarm(force=True)
            engine.stop()
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def make_ca(root: Path) -> None:
    """A throw-away CA in ``root`` (``ca.pem``, ``ca-key.pem``)."""
    root.mkdir(parents=True, exist_ok=True)
    _openssl(
        root, "req", "-x509", *_EC_KEY, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=test-ca",
    )  # fmt: skip


def issue(root: Path, name: str, subject: str, ext: str) -> tuple[Path, Path]:
    """A certificate and its key signed by the CA in ``root``: (``<name>-cert.pem``, ``<name>-key.pem``)."""
    (root / f"{name}.ext").write_text(ext)
    _openssl(root, "req", *_EC_KEY, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subject)
    _openssl(
        root, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", f"{name}.ext",
    )  # fmt: skip
    return root / f"{name}-cert.pem", root / f"{name}-key.pem"


def issue_client(root: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (and key) from the CA in ``root``, as a rotation issues a new one."""
    return issue(root, name, "/CN=anyon", "extendedKeyUsage=clientAuth\n")


def make_tls(root: Path, address: str) -> tuple[str, list[str]]:
    """A throw-away CA, a server certificate for ``address`` and a client certificate (openssl).

    Returns the client directory (ca.pem, cert.pem, key.pem: ``docker.swarm_tls_dir``) and the dockerd
    options of a TLS listener on ``address`` that requires a client certificate from that CA.
    """
    client = root / "client"
    client.mkdir(parents=True)
    make_ca(root)
    issue(root, "server", f"/CN={address}", f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n")
    cert, key = issue_client(root, "client")
    shutil.copy(root / "ca.pem", client / "ca.pem")
    shutil.copy(cert, client / "cert.pem")
    shutil.copy(key, client / "key.pem")
    server = [
        "--tlsverify",
        f"--tlscacert={root / 'ca.pem'}",
        f"--tlscert={root / 'server-cert.pem'}",
        f"--tlskey={root / 'server-key.pem'}",
        f"--host=tcp://{address}:2376",
    ]
    return str(client), server


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever a killed daemon left mounted under ``root`` (overlay, shm, netns)."""
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
