"""smcached under abuse: one agent (file backend) serves a well-behaved client
throughout while other clients misbehave, one kind per phase:

  (a) 1,000 idle connections held open;
  (b) slowloris: several clients sending a request one byte a second;
  (c) clients that pipeline requests for a large secret and never read;
  (d) rapid connects and disconnects: at least 10,000, for at least 3 s
      (some mid-frame, some leaving a reply unread, some reset);
  (e) random bytes from 20 clients at once.

The well-behaved client is a separate process (so this process's GIL does not
add to its latencies) with 4 threads, each on its own connection, doing GET
for a cached secret in a paced loop (1 ms pause). A request counts in the
phase during which it was sent; it succeeds when its reply arrives within
2 s with status OK, its request id and the right value; anything else
(timeout, error status, reset connection: the thread then reconnects) is a
failure. Per phase: success rate = successes / requests sent, which must be
>= 99.9%, and p99 latency of the successful requests, which must stay under
P99_BOUND_MS. Also: the agent's VmRSS stays within 64 MiB of its baseline,
no connection is refused, and the agent's descriptors return to their
starting count. The figures are printed and written to build/abuse-report.txt.

Abusers run in forked processes too. The whole file takes about 40 s.
"""
import array
import multiprocessing
import os
import random
import resource
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

import smc_harness as h

# tests/run_tests.py runs this file alone: it loads both cores / measures latency.
SMCACHE_RUN_ALONE = True

V1 = "11111111-1111-1111-1111-111111111111"
VALUE = b"well-behaved-value-" + b"v" * 200
BIG = "B" * 60000
IDLE_TIMEOUT = 5            # [agent] idle_timeout for this agent, seconds
CLIENT_THREADS = 4
PACE_S = 0.001
REPLY_TIMEOUT = 2.0
# Measured on the 2-core machine: p99 stays below ~10 ms in every phase (see
# build/abuse-report.txt); the bound leaves room for a noisy CI neighbour but
# still fails if the agent stalls for a tick of tens of milliseconds.
P99_BOUND_MS = 50.0
MIN_SUCCESS = 0.999
RSS_BOUND_KIB = 64 * 1024
REPORT = os.path.join(h.BUILD, "abuse-report.txt")


def _asan_build():
    with open(h.SMCACHED, "rb") as f:
        return b"__asan_init" in f.read()


# AddressSanitizer keeps freed memory in quarantine and maps shadow memory for
# it: make the quarantine small for the agent, and allow for the shadow.
ASAN = h.have_binaries() and _asan_build()
if ASAN:
    RSS_BOUND_KIB = 128 * 1024


def _secrets():
    return [h.secret("app/hot", [h.version(V1, ["AWSCURRENT"], string=VALUE.decode())]),
            h.secret("app/big", [h.version(V1, ["AWSCURRENT"], string=BIG)])]


def _connect(path, timeout=REPLY_TIMEOUT):
    """Like libsmcache: a full listen backlog (EAGAIN) is retried until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.001)
        except OSError:
            s.close()
            raise


# ---- the well-behaved client (its own process) ------------------------------------------

def _good_thread(path, stop, out, idx):
    rid = idx << 24
    s = None
    while not stop.is_set():
        rid += 1
        t0 = time.monotonic()
        ok = False
        try:
            if s is None:
                s = _connect(path)
            s.sendall(h.get_frame("app/hot", request_id=rid))
            r = h.read_reply(s)
            ok = (r.status == h.ST_OK and r.request_id == rid and
                  r.get(h.T_SECRET_STRING) == VALUE)
        except (OSError, ConnectionError, AssertionError, struct.error):
            pass
        t1 = time.monotonic()
        if not ok and s is not None:
            s.close()
            s = None
        out.extend((t0, t1 - t0 if ok else -1.0))
        time.sleep(PACE_S)
    if s is not None:
        s.close()


def _good_client(path, stop, result_path):
    outs = [array.array("d") for _ in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=_good_thread, args=(path, stop, outs[i], i))
               for i in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = array.array("d")
    for o in outs:
        merged.extend(o)
    with open(result_path, "wb") as f:
        merged.tofile(f)


# ---- abusers (forked processes) ---------------------------------------------------------

def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _idle_holder(path, count, ready, release, failures):
    _raise_nofile()
    held = []
    for _ in range(count):
        try:
            held.append(_connect(path, timeout=5))
        except OSError:
            failures.value += 1
    ready.set()
    release.wait(30)
    for s in held:
        s.close()


def _slowloris(path, seconds, closed_after):
    """Sends a GET one byte a second; records when the agent closed it (or -1)."""
    data = h.get_frame("app/hot", request_id=7)
    s = _connect(path, timeout=0.2)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        try:
            if i < len(data) - 1:       # never the last byte: the request never completes
                s.send(data[i:i + 1])
                i += 1
            chunk = s.recv(4096)
            if chunk == b"":
                closed_after.value = time.monotonic() - start
                break
        except socket.timeout:
            pass
        except OSError:
            closed_after.value = time.monotonic() - start
            break
        time.sleep(0.8)
    s.close()


def _non_reader(path, seconds, sent):
    s = _connect(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    batch = b"".join(h.get_frame("app/big", request_id=i) for i in range(64))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent.value += s.send(batch)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    s.close()


def _churner(path, count, seconds, seed, failures, done):
    """At least count connections, and on for at least seconds."""
    rnd = random.Random(seed)
    get = h.get_frame("app/hot", request_id=1)
    end = time.monotonic() + seconds
    i = 0
    while i < count or time.monotonic() < end:
        i += 1
        try:
            s = _connect(path)
        except OSError:
            failures.value += 1
            continue
        kind = i % 4
        try:
            if kind == 1:
                s.send(get[:rnd.randrange(1, len(get))])          # half a frame
            elif kind == 2:
                s.send(get)                                       # a reply left unread
            elif kind == 3:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
    done.value += i


def _garbage(path, seconds, seed):
    rnd = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s = _connect(path, timeout=0.5)
        except OSError:
            time.sleep(0.01)
            continue
        try:
            while time.monotonic() < end:
                s.sendall(rnd.randbytes(rnd.randrange(1, 65536)))
                time.sleep(0.005)
        except OSError:
            pass        # the agent hung up on us: expected
        s.close()


# ---- the test ---------------------------------------------------------------------------

def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))



def _pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
@unittest.skipIf(h.WRAPPER, "timing bounds do not hold under SMCACHE_WRAPPER")
class Abuse(unittest.TestCase):
    def setUp(self):
        _raise_nofile()
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2048:
            self.skipTest("RLIMIT_NOFILE hard limit below 2048: cannot hold 1,000 connections")
        self.ctx = multiprocessing.get_context("fork")
        env = {}
        if ASAN:
            env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
        self.agent = h.Agent(_secrets(), env=env)
        with open(self.agent.config, "w") as f:
            f.write(f"[agent]\nsocket = {self.agent.socket}\nlog_level = info\n"
                    f"max_connections = 4096\nidle_timeout = {IDLE_TIMEOUT}\n"
                    f"[backend]\ntype = file\n[file]\npath = {self.agent.secrets_path}\n"
                    # Every client here is this uid: per-uid limits would (rightly)
                    # throttle it; this test is about the server's own bounds.
                    "[limits]\nconnections_per_uid = 4096\n"
                    "requests_per_second_per_uid = 10000000\nburst_per_uid = 10000000\n")
        self.agent.start()
        self.phases = []        # (name, start, end, notes)
        self.rss_max = 0

    def tearDown(self):
        try:
            self.agent.stop()
        finally:
            self.agent.close()

    def wait_processes(self, procs, timeout):
        deadline = time.monotonic() + timeout
        for p in procs:
            while p.is_alive() and time.monotonic() < deadline:
                p.join(0.2)
                self.sample()
            if p.is_alive():
                p.kill()
                self.fail(f"abuser {p.name} did not finish in {timeout}s")
            self.assertEqual(p.exitcode, 0, p.name)

    def sample(self):
        self.rss_max = max(self.rss_max, _status_kib(self.agent.pid(), "VmRSS"))

    def idle_fds(self, want=None, timeout=10.0):
        """The agent's descriptor count once no client is connected (or reaches want)."""
        deadline = time.monotonic() + timeout
        last, stable = -1, 0
        while time.monotonic() < deadline:
            n = _fd_count(self.agent.pid())
            if want is not None and n == want:
                return n
            stable = stable + 1 if n == last else 0
            if want is None and stable >= 5:
                return n
            last = n
            time.sleep(0.1)
        return last

    def phase(self, name, run):
        start = time.monotonic()
        notes = run() or ""
        self.phases.append((name, start, time.monotonic(), notes))
        self.sample()

    def test_well_behaved_client_is_served_through_abuse(self):
        path = self.agent.socket
        pid = self.agent.pid()
        fds_before = self.idle_fds()
        # The secrets are cached before measuring.
        self.assertEqual(self.agent.request(h.get_frame("app/hot")).status, h.ST_OK)
        self.assertEqual(self.agent.request(h.get_frame("app/big")).status, h.ST_OK)
        fd, result_path = tempfile.mkstemp(prefix="smc-abuse-")
        os.close(fd)
        stop = self.ctx.Event()
        good = self.ctx.Process(target=_good_client, args=(path, stop, result_path), name="good",
                                daemon=True)
        good.start()
        try:
            time.sleep(1.0)
            rss_base = _status_kib(pid, "VmRSS")
            self.rss_max = rss_base
            self.phase("baseline", lambda: time.sleep(2.0))

            def idle():
                ready, release = self.ctx.Event(), self.ctx.Event()
                failures = self.ctx.Value("i", 0)
                holders = [self.ctx.Process(target=_idle_holder, args=(path, 500, ready, release,
                                                                       failures), name="idle", daemon=True)
                           for _ in range(2)]
                for p in holders:
                    p.start()
                self.assertTrue(ready.wait(20))
                time.sleep(0.5)
                active = self.agent.stats()["connections_active"]
                time.sleep(2.5)
                self.sample()
                release.set()
                self.wait_processes(holders, 20)
                self.assertEqual(failures.value, 0, "idle connections refused")
                self.assertGreaterEqual(active, 1000)
                return f"{active} connections active"
            self.phase("(a) 1,000 idle connections", idle)

            def slowloris():
                n = 8
                closed = [self.ctx.Value("d", -1.0) for _ in range(n)]
                procs = [self.ctx.Process(target=_slowloris, args=(path, IDLE_TIMEOUT + 3, c),
                                          name="slowloris", daemon=True) for c in closed]
                for p in procs:
                    p.start()
                self.wait_processes(procs, IDLE_TIMEOUT + 15)
                after = [c.value for c in closed]
                for a in after:     # the idle timeout ends each, well before its request completes
                    self.assertGreater(a, IDLE_TIMEOUT - 1.5, after)
                    self.assertLess(a, IDLE_TIMEOUT + 2.5, after)
                return f"{n} clients, closed by the agent after {min(after):.1f}-{max(after):.1f}s"
            self.phase("(b) slowloris, 1 byte/s x 8", slowloris)

            def non_readers():
                n = 4
                sent = [self.ctx.Value("q", 0) for _ in range(n)]
                procs = [self.ctx.Process(target=_non_reader, args=(path, 4.0, s), name="nonreader",
                                          daemon=True)
                         for s in sent]
                for p in procs:
                    p.start()
                self.wait_processes(procs, 20)
                most = max(s.value for s in sent)
                # The agent stopped reading each once its unread replies hit max_output.
                self.assertLess(most, 32 << 20)
                return f"{n} clients, at most {most >> 10} KiB of requests accepted from one"
            self.phase("(c) pipelining, never reading x 4", non_readers)

            def churn():
                failures, done = self.ctx.Value("i", 0), self.ctx.Value("i", 0)
                procs = [self.ctx.Process(target=_churner, args=(path, 5000, 3.0, i, failures, done),
                                          name="churn", daemon=True) for i in range(2)]
                t0 = time.monotonic()
                for p in procs:
                    p.start()
                self.wait_processes(procs, 60)
                self.assertGreaterEqual(done.value, 10000)
                self.assertEqual(failures.value, 0, "connects failed")
                return f"{done.value:,} connections in {time.monotonic() - t0:.1f}s"
            self.phase("(d) 10,000+ connect/disconnect", churn)

            def garbage():
                procs = [self.ctx.Process(target=_garbage, args=(path, 4.0, i), name="garbage",
                                          daemon=True)
                         for i in range(20)]
                for p in procs:
                    p.start()
                self.wait_processes(procs, 20)
                return "20 clients"
            self.phase("(e) random bytes x 20", garbage)
            self.phase("after", lambda: time.sleep(1.0))
        finally:
            stop.set()
            good.join(10)
            if good.is_alive():
                good.kill()
        with open(result_path, "rb") as f:
            data = array.array("d")
            data.frombytes(f.read())
        os.unlink(result_path)
        samples = list(zip(data[0::2], data[1::2]))

        stats = self.agent.stats()
        fds_after = self.idle_fds(want=fds_before)
        rows = []
        for name, start, end, notes in self.phases:
            in_phase = [lat for t, lat in samples if start <= t < end]
            ok = sorted(lat for lat in in_phase if lat >= 0)
            n = len(in_phase)
            rate = len(ok) / n if n else 0.0
            rows.append((name, n, rate, _pct(ok, 50) * 1e3, _pct(ok, 99) * 1e3,
                         (ok[-1] if ok else float("nan")) * 1e3, notes))
        lines = ["smcached abuse test (tests/integration/test_abuse.py): well-behaved client,"
                 f" {CLIENT_THREADS} threads, GET of a cached secret, {PACE_S * 1e3:.0f} ms pause",
                 f"{'phase':36} {'requests':>8} {'success':>9} {'p50 ms':>7} {'p99 ms':>7}"
                 f" {'max ms':>7}  notes"]
        for name, n, rate, p50, p99, mx, notes in rows:
            lines.append(f"{name:36} {n:8d} {rate * 100:8.3f}% {p50:7.2f} {p99:7.2f} {mx:7.1f}  {notes}")
        lines.append(f"agent VmRSS: baseline {rss_base >> 10} MiB, peak {self.rss_max >> 10} MiB"
                     f" (+{(self.rss_max - rss_base) >> 10} MiB; bound +{RSS_BOUND_KIB >> 10} MiB)")
        lines.append(f"agent descriptors with no client: {fds_before} before, {fds_after} after")
        lines.append(f"agent counters: connections_accepted {stats.get('connections_accepted')},"
                     f" connections_rejected {stats.get('connections_rejected')},"
                     f" connections_idle_closed {stats.get('connections_idle_closed')},"
                     f" frames_rejected {stats.get('frames_rejected')},"
                     f" requests_malformed {stats.get('requests_malformed')}")
        lines.append(f"bounds: success >= {MIN_SUCCESS * 100:.1f}% and p99 < {P99_BOUND_MS:.0f} ms"
                     " in every phase")
        report = "\n".join(lines) + "\n"
        sys.stderr.write("\n" + report)
        os.makedirs(os.path.dirname(REPORT), exist_ok=True)
        with open(REPORT, "w") as f:
            f.write(report)

        for name, n, rate, p50, p99, mx, notes in rows:
            self.assertGreater(n, 500, f"{name}: too few well-behaved requests to judge")
            self.assertGreaterEqual(rate, MIN_SUCCESS, f"{name}: success rate {rate:.4%}\n{report}")
            self.assertLess(p99, P99_BOUND_MS, f"{name}: p99 {p99:.1f} ms\n{report}")
        self.assertLess(self.rss_max - rss_base, RSS_BOUND_KIB, report)
        self.assertEqual(stats["connections_rejected"], 0, report)
        self.assertEqual(fds_after, fds_before, f"descriptor leak\n{report}")


if __name__ == "__main__":
    unittest.main()
