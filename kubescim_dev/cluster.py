"""`make cluster`: a single-node Kubernetes on this machine, built and started like the control plane
is — etcd and kube-apiserver (listening on the node's address too), kube-controller-manager,
kube-scheduler, kube-proxy (iptables) and a kubelet with containerd 2 and Debian's runc and CNI
plugins (a bridge pod network, 10.244.0.0/24) — from the same pinned Kubernetes modules.

This machine's quirks (../shared/CONTAINERS.md): cgroup v1 in hybrid mode (`failCgroupV1: false`,
cgroupfs, no QoS cgroups), no CAP_SYS_RESOURCE (`restrict_oom_score_adj`), no registry (images are
imported into containerd from podman; the sandbox image is a local one that sleeps). No DNS add-on:
pods reach the API server through the `kubernetes` Service's environment variables.

    python -m kubescim_dev.cluster up     # prints the kubeconfig path (.local/cluster.env); Ctrl-C stops it
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kubescim_dev.containers import IMAGE, build_image, podman
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane, free_port, kubectl, tool_path

NODE_NAME = "kubescim-node"
POD_SUBNET = "10.244.0.0/24"
PAUSE_IMAGE = "localhost/kubescim-pause:1"
BASE_IMAGE = "localhost/kubescim-base:bookworm-py3.11"
CNI_BIN = Path("/usr/lib/cni")
RUNC = "/usr/sbin/runc"
STATE = REPO_ROOT / ".local" / "cluster.env"
NODE_TOOLS = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")
CONTAINERD_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr")


def node_ip() -> str:
    """The address of the interface with the default route (a kubelet refuses a loopback node IP)."""
    out = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[words.index("src") + 1]


def ensure_packages() -> None:
    """Debian's CNI plugins (bridge, host-local, portmap, loopback) and iptables for kube-proxy."""
    missing = [
        p
        for p, path in (("containernetworking-plugins", CNI_BIN / "bridge"), ("iptables", Path("/usr/sbin/iptables")))
        if not path.exists()
    ]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", *missing]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, check=True, capture_output=True)


@dataclass
class NodeCluster:
    workdir: Path
    ip: str = field(default_factory=node_ip)
    plane: ControlPlane | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None
        return self.plane.kubeconfig

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def tail_log(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- start ----------------------------------------------------------------------------------

    def start(self, images: tuple[str, ...] = (IMAGE,), timeout: float = 180.0) -> None:
        ensure_packages()
        binaries = {tool: tool_path(tool) for tool in (*NODE_TOOLS, *CONTAINERD_TOOLS)}
        for image in images:
            if image == IMAGE:
                build_image(image)
        self._pause_image()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plane = ControlPlane(workdir=self.workdir / "control-plane", node_ip=self.ip, keep_workdir=True)
        self.plane.start()
        pki = self.plane.workdir / "pki"  # type: ignore[operator]
        socket = self._start_containerd(binaries)
        for image in (PAUSE_IMAGE, *images):
            self._import(binaries["ctr"], socket, image)
        admin = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries["kube-scheduler"]),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        self._start_kube_proxy(binaries["kube-proxy"])
        self._start_kubelet(binaries["kubelet"], socket)
        self._wait_node_ready(timeout)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path(name).open("wb")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env or dict(os.environ),
        )
        log.close()

    def _pause_image(self) -> None:
        if podman("image", "exists", PAUSE_IMAGE, check=False).returncode == 0:
            return
        context = Path(tempfile.mkdtemp(prefix="kubescim-pause-"))
        (context / "Containerfile").write_text(f'FROM {BASE_IMAGE}\nCMD ["sleep", "infinity"]\n')
        podman("build", "--quiet", "--tag", PAUSE_IMAGE, str(context), timeout=300)
        shutil.rmtree(context, ignore_errors=True)

    def _start_containerd(self, binaries: dict[str, Path]) -> Path:
        base = self.workdir / "containerd"
        cni = self.workdir / "cni"
        for directory in (base, cni):
            directory.mkdir(parents=True, exist_ok=True)
        socket = base / "containerd.sock"
        (cni / "10-kubescim.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "kubescim",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "kubescim0",
                            "isGateway": True,
                            "ipMasq": True,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_SUBNET}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.workdir / "cni-ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        config = base / "config.toml"
        config.write_text(
            f"""version = 3
root = "{base / "root"}"
state = "{base / "state"}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{base / "ttrpc.sock"}"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  # This machine's processes lack CAP_SYS_RESOURCE: a sandbox's oom_score_adj of -998 is refused.
  restrict_oom_score_adj = true

[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = "runc"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  SystemdCgroup = false

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["{CNI_BIN}"]
  conf_dir = "{cni}"
"""
        )
        env = {**os.environ, "PATH": f"{binaries['containerd-shim-runc-v2'].parent}:{os.environ.get('PATH', '')}"}
        self._spawn("containerd", [str(binaries["containerd"]), f"--config={config}"], env)
        deadline = time.monotonic() + 30
        while not socket.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"containerd did not start:\n{self.tail_log('containerd')}")
            time.sleep(0.2)
        return socket

    def _import(self, ctr: Path, socket: Path, image: str) -> None:
        """An image from podman into containerd's k8s.io namespace: no registry needed."""
        archive = self.workdir / "image.tar"
        podman("save", "--format", "docker-archive", "--output", str(archive), image, timeout=600)
        subprocess.run(
            [str(ctr), "--address", str(socket), "--namespace", "k8s.io", "images", "import", str(archive)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        archive.unlink()

    def _start_kube_proxy(self, binary: Path) -> None:
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": "10.244.0.0/16",
                    "hostnameOverride": NODE_NAME,
                    "healthzBindAddress": f"127.0.0.1:{free_port()}",
                    "metricsBindAddress": f"127.0.0.1:{free_port()}",
                    # No conntrack sysctls to set (this machine may not allow it), and every Service hop
                    # masqueraded: a pod reaching a Service backed by a pod on the same bridge works
                    # without br_netfilter.
                    "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
                    "iptables": {"masqueradeAll": True},
                }
            )
        )
        self._spawn("kube-proxy", [str(binary), f"--config={config}", "--v=1"])

    def _start_kubelet(self, binary: Path, socket: Path) -> None:
        root = self.workdir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kubelet.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # cgroup v1 (hybrid) here: Kubernetes 1.35+ refuses it unless told otherwise.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupsPerQOS": False,
                    "enforceNodeAllocatable": [],
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{socket}",
                    "address": self.ip,
                    "port": free_port(),
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": free_port(),
                    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                    "authorization": {"mode": "AlwaysAllow"},
                    "clusterDomain": "cluster.local",
                    "resolvConf": "/etc/resolv.conf",
                    "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "protectKernelDefaults": False,
                    "localStorageCapacityIsolation": False,
                    "serializeImagePulls": False,
                }
            )
        )
        self._spawn(
            "kubelet",
            [
                str(binary),
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.ip}",
                "--v=1",
            ],
        )

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail_log(name)}")

    def _wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            result = kubectl(
                self.kubeconfig,
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            if result.stdout.strip() == "True":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"node {NODE_NAME} not Ready: {result.stdout} {result.stderr}\n{self.tail_log('kubelet')}"
                )
            time.sleep(1)

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        for name in ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            self._stop(name)
        self._remove_pods()
        self._stop("containerd")
        self._unmount()
        if self.plane is not None:
            self.plane.stop(keep=True)
        subprocess.run(["ip", "link", "delete", "kubescim0"], capture_output=True, check=False)
        # kube-proxy's chains: a restarted cluster (or another one) must not inherit them.
        for table in ("nat", "filter"):
            rules = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=False).stdout
            if "KUBE-" in rules:
                kept = "\n".join(line for line in rules.splitlines() if "KUBE-" not in line) + "\n"
                subprocess.run(
                    ["iptables-restore", "-T", table], input=kept, text=True, capture_output=True, check=False
                )

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _unmount(self) -> None:
        """The kubelet's and containerd's mounts under the workdir (volumes, shm, rootfs), deepest
        first, so the directory can be removed and nothing leaks into the next cluster."""
        prefix = str(self.workdir.resolve()) + "/"
        points = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix) or line.split()[1] == prefix.rstrip("/")
        ]
        for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

    def _remove_pods(self) -> None:
        """Containers the kubelet left behind: their runc processes outlive containerd otherwise."""
        state = self.workdir / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
        if not state.exists():
            return
        for container in state.iterdir():
            subprocess.run(
                [RUNC, "--root", "/run/containerd/runc/k8s.io", "kill", container.name, "KILL"],
                capture_output=True,
                check=False,
            )
        subprocess.run(["pkill", "-KILL", "-f", "containerd-shim-runc-v2"], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubescim_dev.cluster")
    parser.add_argument("command", choices=["up"])
    args = parser.parse_args(argv)
    if args.command == "up":
        cluster = NodeCluster(REPO_ROOT / ".local" / "cluster")
        try:
            cluster.start()
        except Exception:
            cluster.stop()
            raise
        STATE.write_text(f"KUBECONFIG={cluster.kubeconfig}\n")
        print(cluster.kubeconfig)
        print("node Ready; stop with: python -m kubescim_dev.cluster down (Ctrl-C)", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
