"""Helpers for test_resilience.py: an upstream proxy that logs every call with a timestamp
and applies lasting faults, and reader processes that hammer the agent over the raw protocol.

- Upstream: aws_moto.FaultProxy plus
    log           every request as a Call (op, secret ids named, time.monotonic() when it
                  arrived and when it was answered), for rates over time windows;
    fail(...)     a lasting fault (or a cycle of faults) for chosen ops and/or secret ids,
                  until heal(); FaultProxy.inject() keeps its one-shot queues and wins;
    calls(...)    upstream calls (DescribeSecret + GetSecretValue + BatchGetSecretValue)
                  that arrived in a time window; calls_in(), calls_by_op(), slowest().
- Readers: N separate Python processes (this file run as a script), each with one
  connection to the agent, reading a list of secret ids round robin as fast as the agent
  answers (or paced). Each reports its reads, statuses, stale replies, wrong values, and
  optionally every latency and a per-secret run-length timeline of (status, stale) so a
  test can check what clients saw and when. time.monotonic() is CLOCK_MONOTONIC, shared by
  every process on the machine, so the parent and readers use one clock.
"""
import itertools
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

UPSTREAM_OPS = ("DescribeSecret", "GetSecretValue", "BatchGetSecretValue")


class _TimedHandler(aws_moto._ProxyHandler):
    """Notes when the proxy was done with each request (answered, or dropped)."""

    def do_POST(self):
        proxy = self.server.fault_proxy
        proxy._current.entry = None
        try:
            super().do_POST()
        finally:
            entry = proxy._current.entry
            if entry is not None:
                entry.answered = time.monotonic()

    do_GET = do_POST
    do_PUT = do_POST


class Call:
    """One request seen by the proxy: op, the secret ids it names, when it arrived and when
    it was answered (None while in flight or when the connection was dropped unanswered)."""
    __slots__ = ("arrived", "op", "ids", "answered")

    def __init__(self, arrived, op, ids):
        self.arrived, self.op, self.ids, self.answered = arrived, op, ids, None


class Upstream(aws_moto.FaultProxy):
    """FaultProxy in front of moto with a timestamped request log and lasting faults."""

    def __init__(self, upstream_port):
        super().__init__(upstream_port)
        self.server.RequestHandlerClass = _TimedHandler
        self.log = []           # Call, every request, in arrival order
        self._rules = []        # [rule dicts], first match wins
        self._current = threading.local()   # the Call a handler thread is answering

    def fail(self, *faults, ops=None, ids=None):
        """From now on, answer every request for `ops` (None: any) about `ids` (names or
        ARNs as sent in SecretId/SecretIdList; None: any) with these faults, in a cycle.
        Returns a handle for heal(). Later rules are checked first."""
        rule = {"ops": set(ops) if ops else None, "ids": set(ids) if ids else None,
                "faults": itertools.cycle(faults)}
        with self._lock:
            self._rules.insert(0, rule)
        return rule

    def heal(self, rule=None):
        """Removes one lasting fault (or all of them)."""
        with self._lock:
            if rule is None:
                self._rules.clear()
            elif rule in self._rules:
                self._rules.remove(rule)

    def calls_in(self, t0=0.0, t1=float("inf"), ops=UPSTREAM_OPS, ids=None):
        """The upstream calls that arrived in [t0, t1), optionally only those naming one of ids."""
        with self._lock:
            return [c for c in self.log if t0 <= c.arrived < t1 and c.op in ops and
                    (ids is None or c.ids & set(ids))]

    def calls(self, t0=0.0, t1=float("inf"), ops=UPSTREAM_OPS):
        return len(self.calls_in(t0, t1, ops))

    def calls_by_op(self, t0=0.0, t1=float("inf")):
        out = {op: 0 for op in UPSTREAM_OPS}
        for c in self.calls_in(t0, t1):
            out[c.op] += 1
        return out

    def slowest(self, t0=0.0, t1=float("inf"), ops=UPSTREAM_OPS):
        """The longest time an answered upstream call arriving in [t0, t1) took."""
        return max((c.answered - c.arrived for c in self.calls_in(t0, t1, ops)
                    if c.answered is not None), default=0.0)

    def _record(self, op, headers, body):
        fault = super()._record(op, headers, body)
        call = Call(time.monotonic(), op, frozenset(_secret_ids(body)))
        self._current.entry = call
        with self._lock:
            self.log.append(call)
            if fault is not None:
                return fault
            for rule in self._rules:
                if rule["ops"] is not None and op not in rule["ops"]:
                    continue
                if rule["ids"] is not None and not (call.ids & rule["ids"]):
                    continue
                return next(rule["faults"])
        return None


def _secret_ids(body):
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return set()
    if not isinstance(doc, dict):
        return set()
    ids = set(doc.get("SecretIdList") or [])
    if isinstance(doc.get("SecretId"), str):
        ids.add(doc["SecretId"])
    return ids


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # nearest rank
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


class Readers:
    """N reader processes. start() returns once every one is connected and reading began at
    one common instant (self.started); stop() ends them and returns their reports."""

    def __init__(self, socket_path, ids, values, n, latencies=False, timeline=False,
                 pause_s=0.0, env=None):
        self.spec = {"socket": socket_path, "ids": ids, "values": values,
                     "latencies": latencies, "timeline": timeline, "pause": pause_s}
        self.n = n
        self.env = dict(env or os.environ)
        self.procs = []
        self.started = None
        self.reports = []

    def start(self, timeout=60.0):
        for i in range(self.n):
            spec = dict(self.spec, offset=i)
            self.procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "reader", json.dumps(spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.env))
        deadline = time.monotonic() + timeout
        for p in self.procs:
            line = b""
            while time.monotonic() < deadline and not line:
                r, _, _ = select.select([p.stdout], [], [], 0.5)
                if r:
                    line = p.stdout.readline()
                    break
                if p.poll() is not None:
                    break
            if line.strip() != b"ready":
                self.kill()
                raise AssertionError(f"a reader did not start: {line!r} "
                                     f"{p.stderr.read().decode(errors='replace') if p.poll() is not None else ''}")
        self.started = time.monotonic() + 0.2
        for p in self.procs:
            p.stdin.write(f"{self.started}\n".encode())
            p.stdin.flush()
        time.sleep(max(0.0, self.started - time.monotonic()))
        return self

    def stop(self, timeout=30.0):
        """Ends reading now; returns the reports (one dict per process)."""
        self.stopped = time.monotonic()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
        self.reports = []
        for p in self.procs:
            out, err = p.communicate(timeout=timeout)
            lines = out.decode().strip().splitlines()
            if p.returncode != 0 or not lines:
                raise AssertionError(f"a reader failed ({p.returncode}): {err.decode(errors='replace')}")
            self.reports.append(json.loads(lines[-1]))
        self.procs = []
        return self.reports

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs = []

    def total(self, key):
        return sum(r[key] for r in self.reports)

    def statuses(self):
        out = {}
        for r in self.reports:
            for k, v in r["statuses"].items():
                out[int(k)] = out.get(int(k), 0) + v
        return out

    def latencies_ms(self):
        return sorted(x / 1e6 for r in self.reports for x in r.get("latencies_ns", []))


# ---- the reader process -----------------------------------------------------------------------

def _reader(spec):
    stop = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ids = spec["ids"]
    values = {k: v.encode() for k, v in spec["values"].items()}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(spec["socket"])
    frames = [h.get_frame(sid, request_id=i + 1) for i, sid in enumerate(ids)]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.monotonic()))
    reads = stale = wrong = 0
    statuses = {}
    lat = [] if spec["latencies"] else None
    # timeline[secret index] = [[status, stale, t_first, t_last, count], ...]
    timeline = [[] for _ in ids] if spec["timeline"] else None
    pause = spec["pause"]
    n = len(ids)
    i = spec["offset"] % n
    perf = time.perf_counter_ns
    mono = time.monotonic
    while not stop.is_set():
        t0 = perf()
        sock.sendall(frames[i])
        r = h.read_reply(sock)
        t1 = perf()
        reads += 1
        st = r.status
        is_stale = bool(r.flags & 1)
        statuses[st] = statuses.get(st, 0) + 1
        if st == h.ST_OK:
            stale += is_stale
            if r.get(h.T_SECRET_STRING) != values[ids[i]]:
                wrong += 1
        if lat is not None:
            lat.append(t1 - t0)
        if timeline is not None:
            now = mono()
            segs = timeline[i]
            if segs and segs[-1][0] == st and segs[-1][1] == is_stale:
                segs[-1][3] = now
                segs[-1][4] += 1
            else:
                segs.append([st, is_stale, now, now, 1])
        i = (i + 1) % n
        if pause:
            time.sleep(pause)
    sock.close()
    report = {"reads": reads, "stale": stale, "wrong": wrong,
              "statuses": {str(k): v for k, v in statuses.items()}}
    if lat is not None:
        report["latencies_ns"] = lat
    if timeline is not None:
        report["timeline"] = timeline
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "reader":
        _reader(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: resilience_util.py reader SPEC-JSON")
