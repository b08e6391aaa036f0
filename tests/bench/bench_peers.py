"""The peers `make bench` compares smcached with, and the helpers that drive them.

- Redis: a private redis-server on a Unix socket (no persistence), filled over RESP.
- Nginx: nginx serving one static file at the agent's HTTP path, keep-alive on, one worker.
- wrk: runs and parses `wrk --latency` (non-2xx replies count as errors).
- FakeUpstream: runs fake_upstream.c, a fast Secrets Manager stand-in for filling the cache
  through the aws backend (GetSecretValue / DescribeSecret for any id, signatures unchecked).
- fleet_simulation: the AWS caching library's documented refresh rule, simulated.

Every peer is optional: `have(name)` says whether its binary is installed; the caller
prints a note and skips the row when it is not (`make deps-bench` installs them).
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

BINARIES = {"redis": "redis-server", "nginx": "nginx", "wrk": "wrk", "gnuplot": "gnuplot",
            "hyperfine": "hyperfine"}


def which(name):
    # SMC_BENCH_WITHOUT=redis,nginx,...: act as if those were not installed (to check the skips).
    if name in os.environ.get("SMC_BENCH_WITHOUT", "").split(","):
        return None
    path = shutil.which(BINARIES.get(name, name))
    if path is None and name == "nginx" and os.access("/usr/sbin/nginx", os.X_OK):
        path = "/usr/sbin/nginx"
    return path


def have(name):
    return which(name) is not None


def version_of(name):
    """A one-line version string, or 'absent'."""
    path = which(name)
    if path is None:
        return "absent"
    args = {"redis": ["--version"], "nginx": ["-v"], "wrk": ["-v"], "gnuplot": ["--version"],
            "hyperfine": ["--version"]}.get(name, ["--version"])
    try:
        p = subprocess.run([path] + args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    out = (p.stdout + p.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


def wait_unix(path, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {path}")


def wait_tcp(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_memory(pid):
    """VmRSS, VmLck, VmHWM, RssAnon, RssFile (bytes) from /proc/PID/status, read from
    outside the process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmLck", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) * 1024
    return out


# ---- redis ----------------------------------------------------------------------------------

class Redis:
    """redis-server on a private Unix socket: no TCP, no persistence, default allocator."""

    def __init__(self, workdir):
        self.dir = workdir
        self.socket = os.path.join(workdir, "redis.sock")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [which("redis"), "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_unix(self.socket, self.proc)
        return self

    def stop(self):
        stop(self.proc)

    def pid(self):
        return self.proc.pid

    def command(self, *cmds):
        """Sends RESP commands (lists of bytes) pipelined; returns the raw replies' count."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(self.socket)
            buf = bytearray()
            for cmd in cmds:
                buf += b"*%d\r\n" % len(cmd)
                for part in cmd:
                    buf += b"$%d\r\n%s\r\n" % (len(part), part)
            s.sendall(buf)
            # Every command here answers one line (+OK, :N, $N then data): count replies.
            data = b""
            replies = 0
            while replies < len(cmds):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("redis closed the connection")
                data += chunk
                replies = data.count(b"+OK\r\n") + data.count(b"\r\n:")
                if data.startswith(b":"):
                    replies += 1
                if b"-ERR" in data:
                    raise RuntimeError(f"redis: {data[:200]!r}")
            return data

    def set_many(self, items, batch=500):
        items = list(items)
        for i in range(0, len(items), batch):
            self.command(*[[b"SET", k.encode(), v] for k, v in items[i:i + batch]])


# ---- nginx ----------------------------------------------------------------------------------

class Nginx:
    """nginx answering GET PATH with the bytes of one file, keep-alive, one worker."""

    def __init__(self, workdir, body, path="/secretsmanager/get"):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.body_path = os.path.join(self.dir, "body.json")
        with open(self.body_path, "wb") as f:
            f.write(body)
        os.chmod(self.body_path, 0o644)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log error;
events {{ worker_connections 4096; use epoll; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_body_temp_path {self.dir}/tmp; proxy_temp_path {self.dir}/tmp;
  fastcgi_temp_path {self.dir}/tmp; uwsgi_temp_path {self.dir}/tmp; scgi_temp_path {self.dir}/tmp;
  server {{
    listen 127.0.0.1:{self.port};
    location = {path} {{ default_type application/x-amz-json-1.1; alias {self.body_path}; }}
  }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([which("nginx"), "-p", self.dir, "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_tcp(self.port, self.proc)
        return self

    def stop(self):
        stop(self.proc)


# ---- wrk ------------------------------------------------------------------------------------

_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _lat_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0


def run_wrk(url, conns, duration, headers=(), threads=None):
    """{'rps', 'p50_us', 'p99_us', 'requests', 'errors'} of one wrk run."""
    threads = threads or min(conns, os.cpu_count() or 1)
    cmd = [which("wrk"), f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency"]
    for hdr in headers:
        cmd += ["-H", hdr]
    p = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60)
    out = p.stdout
    res = {"rps": 0.0, "p50_us": 0.0, "p99_us": 0.0, "requests": 0, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for q, key in (("50%", "p50_us"), ("99%", "p99_us")):
        m = re.search(rf"^\s+{q}\s+(\S+)", out, re.M)
        if m:
            res[key] = _lat_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    if p.returncode != 0 or res["requests"] == 0:
        res["errors"] += 1
        res["stderr"] = (p.stderr or out)[-500:]
    return res


# ---- a fast fake upstream (memory bench) ------------------------------------------------------

def fake_value(name, size=1024):
    seed = sum(name.encode()) * 2654435761 & 0xFFFFFFFF
    rnd = random.Random(seed)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(size))


class FakeUpstream:
    """build/bench/fake_upstream: GetSecretValue/DescribeSecret for any id, on 127.0.0.1."""

    def __init__(self, binary, workdir, value_len=1024):
        self.binary, self.value_len = binary, value_len
        self.portfile = os.path.join(workdir, "fake-upstream.port")
        self.proc = None
        self.url = None
        self.counts = {}

    def start(self):
        if os.path.exists(self.portfile):
            os.unlink(self.portfile)
        self.proc = subprocess.Popen([self.binary, "-p", self.portfile, "-l", str(self.value_len)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not (os.path.exists(self.portfile) and open(self.portfile).read().endswith("\n")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake_upstream did not start")
            time.sleep(0.02)
        port = int(open(self.portfile).read())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self):
        stop(self.proc)
        try:
            self.counts = json.loads(self.proc.stdout.read() or "{}")
        except ValueError:
            self.counts = {}


# ---- the caching library's refresh rule, simulated -------------------------------------------

def fleet_simulation(processes, secrets, seconds, refresh_interval, seed=1):
    """Upstream calls of `processes` processes, each with its own SecretCache holding `secrets`.

    The documented rule of aws-secretsmanager-caching (SecretCacheConfig
    secret_refresh_interval): an item is refreshed at a random point between half and all of
    the interval after its last refresh; a refresh is DescribeSecret, then GetSecretValue only
    when the current version changed (never here: no rotation during the run). Each process
    starts with one GetSecretValue per secret (its first read). A simulation, not a run.
    """
    rnd = random.Random(seed)
    calls = {"GetSecretValue": 0, "DescribeSecret": 0}
    for _ in range(processes):
        for _ in range(secrets):
            calls["GetSecretValue"] += 1
            t = 0.0
            while True:
                t += rnd.uniform(refresh_interval / 2, refresh_interval)
                if t > seconds:
                    break
                calls["DescribeSecret"] += 1
    calls["total"] = calls["GetSecretValue"] + calls["DescribeSecret"]
    return calls
