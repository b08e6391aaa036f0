"""Shared helpers for smcache integration tests.

- Agent: starts a real build/smcached on a temporary socket with a temporary
  configuration and secrets file, waits until it answers, and on stop checks
  that it exited cleanly with no sanitizer report in its log.
- A small, independent Python implementation of the wire protocol written from
  proto/PROTOCOL.md (not from the C), so tests can send raw and broken frames.
"""
import base64
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SMCACHE_BUILD", os.path.join(ROOT, "build"))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
SMCACHED = os.path.join(BUILD, "smcached")
SMCACHE = os.path.join(BUILD, "smcache")

# A command to run smcached under, e.g. "valgrind --error-exitcode=99 ..." (make valgrind).
WRAPPER = shlex.split(os.environ.get("SMCACHE_WRAPPER", ""))
# Start-up and shutdown are much slower under a wrapper like valgrind.
WRAPPER_SLOWDOWN = 4.0 if WRAPPER else 1.0

# The agent refuses files writable by group or others (agent/base/sys_file.h): whatever the
# developer's umask (002 is common), the files tests write are never group/world-writable.
os.umask(os.umask(0o022) | 0o022)

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")

# --- protocol constants (proto/PROTOCOL.md) ---
VERSION = 1
OP_PING, OP_GET, OP_DESCRIBE, OP_STATS = 1, 2, 3, 4
OP_REPLY = 0x80
ST_OK, ST_NOT_FOUND, ST_ACCESS_DENIED, ST_BAD_REQUEST = 0, 1, 2, 3
ST_UPSTREAM_UNAVAILABLE, ST_INTERNAL, ST_UNSUPPORTED, ST_TOO_LARGE = 4, 5, 6, 7
ST_LIMIT_EXCEEDED, ST_UPSTREAM_AUTH = 8, 9
T_SECRET_ID, T_VERSION_STAGE, T_VERSION_ID, T_ARN, T_NAME = 1, 2, 3, 4, 5
T_SECRET_STRING, T_SECRET_BINARY, T_CREATED_DATE, T_MESSAGE = 6, 7, 8, 9
T_VERSION, T_STAT, T_STAT_NAME, T_STAT_VALUE, T_AGENT_VERSION = 0x0d, 0x0e, 0x0f, 0x10, 0x11
MAX_BODY = 256 * 1024


def field(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">HI", tag, len(value)) + value


def frame(op, request_id=1, fields=b"", flags=0, status=0, version=VERSION):
    body = struct.pack(">BBHIH", version, op, flags, request_id, status) + fields
    return struct.pack(">I", len(body)) + body


def get_frame(secret_id, request_id=1, stage=None, version_id=None):
    f = field(T_SECRET_ID, secret_id)
    if stage is not None:
        f += field(T_VERSION_STAGE, stage)
    if version_id is not None:
        f += field(T_VERSION_ID, version_id)
    return frame(OP_GET, request_id, f)


def parse_fields(data):
    out = []
    off = 0
    while off < len(data):
        tag, n = struct.unpack_from(">HI", data, off)
        off += 6
        out.append((tag, data[off:off + n]))
        off += n
    return out


class Reply:
    def __init__(self, body):
        self.version, self.op, self.flags, self.request_id, self.status = struct.unpack_from(">BBHIH", body)
        self.fields = parse_fields(body[10:])

    def get(self, tag):
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def all(self, tag):
        return [v for t, v in self.fields if t == tag]

    @property
    def message(self):
        m = self.get(T_MESSAGE)
        return m.decode() if m is not None else ""


def parse_stats(reply):
    """A STATS reply as {name: value}."""
    out = {}
    for v in reply.all(T_STAT):
        f = dict(parse_fields(v))
        out[f[T_STAT_NAME].decode()] = struct.unpack(">Q", f[T_STAT_VALUE])[0]
    return out


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_reply(sock):
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    assert n <= MAX_BODY, n
    return Reply(recv_exact(sock, n))


def wait_closed(sock, timeout=5.0):
    """True when the peer closes the connection (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def secret(name, versions, arn=None, **extra):
    s = {"Name": name, "Versions": versions}
    if arn:
        s["ARN"] = arn
    s.update(extra)
    return s


def version(version_id, stages, string=None, binary=None, created=1700000000):
    v = {"VersionId": version_id, "VersionStages": stages, "CreatedDate": created}
    if binary is not None:
        v["SecretBinary"] = base64.b64encode(binary).decode()
    else:
        v["SecretString"] = string
    return v


class Agent:
    """A real smcached on a temporary socket; use as a context manager."""

    def __init__(self, secrets=None, config_extra="", secrets_path=None, env=None, agent_extra=""):
        self.dir = tempfile.mkdtemp(prefix="smc-test-")
        self.socket = os.path.join(self.dir, "smcached.sock")
        self.secrets_path = secrets_path or os.path.join(self.dir, "secrets.json")
        if secrets is not None:
            self.write_secrets(secrets)
        self.config = os.path.join(self.dir, "smcached.conf")
        with open(self.config, "w") as f:
            f.write(f"[agent]\nsocket = {self.socket}\nlog_level = debug\n{agent_extra}"
                    f"[backend]\ntype = file\n[file]\npath = {self.secrets_path}\n{config_extra}\n")
        self.log_path = os.path.join(self.dir, "smcached.log")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.connect_path = None    # where clients connect, when not self.socket

    def write_secrets(self, secrets):
        doc = {"Region": "us-east-1", "Account": "123456789012", "Secrets": secrets}
        tmp = self.secrets_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.secrets_path)

    def command(self):
        """What start() runs; a subclass may put a launcher in front."""
        return [*WRAPPER, SMCACHED, "-c", self.config]

    def popen_kwargs(self):
        """Extra subprocess.Popen arguments for start()."""
        return {"env": self.env}

    def start(self, timeout=15.0):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, **self.popen_kwargs())
        deadline = time.monotonic() + timeout * WRAPPER_SLOWDOWN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"smcached exited with {self.proc.returncode}:\n{self.read_log()}")
            if self.answers():
                return self
            time.sleep(0.02)
        raise AssertionError(f"smcached did not start listening:\n{self.read_log()}")

    def answers(self):
        """True once the agent answers a PING. The socket listens before the backend is
        built, privileges dropped and signals handled, so a connect alone can come too
        early. Any reply (even "access denied" under rules) will do."""
        try:
            with self.connect(timeout=5.0) as s:
                s.sendall(frame(OP_PING, 1))
                read_reply(s)
                return True
        except (OSError, ConnectionError, struct.error):
            return False

    def connect(self, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.connect_path or self.socket)
        except OSError:
            s.close()
            raise
        return s

    def request(self, frame_bytes, timeout=10.0):
        with self.connect(timeout) as s:
            s.sendall(frame_bytes)
            return read_reply(s)

    def stats(self):
        """The agent's STATS counters as a dict."""
        return parse_stats(self.request(frame(OP_STATS, 1)))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cli(self, *args, input=None, timeout=30):
        env = dict(self.env, SMCACHE_SOCKET=self.socket)
        return subprocess.run([SMCACHE, *args], capture_output=True, env=env, input=input,
                              timeout=timeout)

    def pid(self):
        return self.proc.pid

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, check=True):
        """SIGTERM, then assert a clean exit and a log free of sanitizer reports."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20 * WRAPPER_SLOWDOWN)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError(f"smcached ignored SIGTERM:\n{self.read_log()[-4000:]}")
        self.log.close()
        log = self.read_log()
        rc = self.proc.returncode
        self.proc = None
        if check:
            for marker in SANITIZER_MARKERS:
                if marker in log:
                    raise AssertionError(f"sanitizer report in smcached log:\n{log[-8000:]}")
            if rc != 0:
                raise AssertionError(f"smcached exited with status {rc}:\n{log[-4000:]}")
        return log

    def close(self):
        try:
            self.stop(check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop(check=True)
        finally:
            self.close()
        return False


class SharedAgentTest(unittest.TestCase):
    """One agent for a whole test class: the class's make_agent() builds it."""

    @classmethod
    def make_agent(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.agent = cls.make_agent()
        cls.agent.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.agent.stop()
        finally:
            cls.agent.close()


def have_binaries():
    return os.access(SMCACHED, os.X_OK) and os.access(SMCACHE, os.X_OK)


def sanitizer_cflags():
    """Flags a program linked against BUILD's libsmcache.so needs: that of `make asan`
    carries the sanitizer runtimes' symbols."""
    so = os.path.join(BUILD, "libsmcache.so")
    p = subprocess.run(["objdump", "-p", so], capture_output=True, text=True)
    return ["-fsanitize=address,undefined"] if "libasan" in p.stdout else []
