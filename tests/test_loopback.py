"""A local Ray started by a sweep listens on the loopback interface only, and its workers run at
normal priority (Ray's default niceness of 15 lets any busy program starve a sweep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")]

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: starts Ray as a sweep does, runs a task (so a worker exists),
# then lists the listening TCP sockets of every process it started, from /proc.
PROBE = r"""
import json, os, socket, struct
import ray
from sweep.run import ray_executor
from sweep.spec import RaySpec

ray_executor.connect(RaySpec(num_cpus=1))
niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())

def children():
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found | {os.getpid()}

def inodes(pid):
    out = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                out[target[8:-1]] = pid
    except OSError:
        pass
    return out

def address(hex_addr, family):
    ip, port = hex_addr.split(":")
    raw = bytes.fromhex(ip)
    if family == socket.AF_INET:
        return socket.inet_ntop(family, raw[::-1]) + f":{int(port, 16)}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return "[" + socket.inet_ntop(family, words) + f"]:{int(port, 16)}"

owners = {}
for pid in children():
    owners.update(inodes(pid))
listening = []
for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
    if not os.path.exists(table):
        continue
    for line in open(table).read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in owners:
            name = open(f"/proc/{owners[fields[9]]}/comm").read().strip()
            listening.append([name, address(fields[1], family)])
ray.shutdown()
print(json.dumps({"listening": listening, "niceness": niceness}))
"""


@pytest.mark.slow
def test_every_ray_process_of_a_local_sweep_listens_on_127_0_0_1_only_and_workers_are_not_niced():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    listening = probe["listening"]
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the probe sees Ray's servers
    assert [entry for entry in listening if not entry[1].startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"))] == []
    assert probe["niceness"] == 0


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:6379", True), ("localhost:6379", True), ("ray://127.0.0.1:10001", True),
    ("10.0.0.1:6379", False), ("auto", False), (None, False),
])
def test_a_cluster_address_on_loopback_keeps_the_driver_on_loopback(address, loopback):
    from sweep.run.ray_executor import _on_loopback

    assert _on_loopback(address) is loopback
