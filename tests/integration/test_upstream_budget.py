"""Upstream cost belongs to the user who causes it; hits are free (issue 9, section 2).

Against the aws backend (moto_server behind a counting proxy):
  - 50,000 pipelined cache hits from one uid: not one LIMIT_EXCEEDED (no default cap on hits);
  - 2,000 distinct missing names, and 2,000 distinct version ids, from one uid: the upstream
    calls they cause are bounded by that uid's upstream budget (upstream_per_second_per_uid,
    upstream_burst_per_uid, left at their defaults), the rest is answered LIMIT_EXCEEDED with
    a message that says why, and another uid's cold read meanwhile is served;
  - the agent never holds more than [aws] max_connections connections to the upstream, nor
    more requests in flight there, however many cold reads arrive at once (counted at the
    proxy), and every read is answered once the queue drains.
"""
import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

# The defaults this test relies on (conf/smcached.conf, [limits]).
UPSTREAM_RATE, UPSTREAM_BURST = 20, 200

NOBODY, NOGROUP = "nobody", "nogroup"
SETPRIV = shutil.which("setpriv")


def _other_uid_ok():
    try:
        pwd.getpwnam(NOBODY), grp.getgrnam(NOGROUP)
    except KeyError:
        return False
    return os.geteuid() == 0 and SETPRIV is not None


RUN = aws_moto.have_moto() and h.have_binaries()
MOTO = None


setUpModule, tearDownModule = aws_moto.module_hooks(__name__, RUN)


def pipeline(sock, frames, n):
    """Sends frames from a thread while reading n replies; returns the replies."""
    err = []

    def send():
        try:
            sock.sendall(b"".join(frames))
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=send)
    t.start()
    replies = [h.read_reply(sock) for _ in range(n)]
    t.join(30)
    if err:
        raise err[0]
    return replies


@unittest.skipUnless(RUN, "needs boto3, moto_server, build/smcached and build/smcache")
class UpstreamBudget(unittest.TestCase):
    def setUp(self):
        self.sm = MOTO.client()
        self.proxy = aws_moto.FaultProxy(MOTO.port).start()

    def tearDown(self):
        self.proxy.stop()

    def agent(self, aws_extra="", limits=""):
        a = aws_moto.AwsAgent(endpoint=self.proxy.url, aws_extra=aws_extra,
                              cache_extra="negative_ttl = 0\nrefresh_ahead = 0\n" +
                              (f"[limits]\n{limits}" if limits else ""),
                              agent_extra="socket_mode = 0666\nmax_connections = 1024\n")
        os.chmod(a.dir, 0o755)
        return a

    def other_uid_get(self, a, name):
        """`smcache get name` as nobody: (exit status, stdout, stderr)."""
        env = dict(a.env, SMCACHE_SOCKET=a.socket)
        r = subprocess.run([SETPRIV, f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups",
                            h.SMCACHE, "get", name], capture_output=True, env=env, timeout=30)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    def test_fifty_thousand_pipelined_hits_are_never_limited(self):
        name = f"budget/hot-{time.monotonic_ns()}"
        self.sm.create_secret(Name=name, SecretString="hot-value")
        with self.agent() as a:
            self.assertEqual(a.get(name)[1], b"hot-value")
            n = 50000
            with a.connect(timeout=60) as s:
                replies = pipeline(s, [h.get_frame(name, request_id=i + 1) for i in range(n)], n)
            statuses = [r.status for r in replies]
            self.assertEqual(statuses.count(h.ST_LIMIT_EXCEEDED), 0)
            self.assertEqual(statuses.count(h.ST_OK), n)
            self.assertEqual(self.proxy.count("GetSecretValue"), 1)

    def flood(self, a, frames):
        """Pipelines frames over 4 connections; returns (statuses, messages, seconds)."""
        parts = [frames[i::4] for i in range(4)]
        out = [None] * 4
        start = time.monotonic()

        def run(i):
            with a.connect(timeout=60) as s:
                out[i] = pipeline(s, parts[i], len(parts[i]))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - start
        replies = [r for part in out for r in part]
        self.assertEqual(len(replies), len(frames))
        return [r.status for r in replies], [r.message for r in replies], elapsed

    def assert_bounded(self, calls, elapsed, statuses, messages):
        bound = UPSTREAM_BURST + UPSTREAM_RATE * elapsed + 5
        print(f"\n  {calls} upstream calls for 2,000 requests in {elapsed:.1f} s (bound {bound:.0f}),"
              f" {statuses.count(h.ST_LIMIT_EXCEEDED)} LIMIT_EXCEEDED", file=sys.stderr)
        self.assertLessEqual(calls, bound, f"{calls} upstream calls in {elapsed:.1f}s")
        self.assertGreater(statuses.count(h.ST_LIMIT_EXCEEDED), 2000 - bound - 1)
        limited = [m for s, m in zip(statuses, messages) if s == h.ST_LIMIT_EXCEEDED]
        self.assertIn("upstream_per_second_per_uid", limited[0])

    def check_other_uid(self, a):
        if not _other_uid_ok():
            return
        other = f"budget/other-{time.monotonic_ns()}"
        self.sm.create_secret(Name=other, SecretString="other-user-value")
        rc, out, err = self.other_uid_get(a, other)
        self.assertEqual((rc, out), (0, b"other-user-value"), err)

    def test_two_thousand_missing_names_are_bounded_by_the_budget(self):
        tag = time.monotonic_ns()
        with self.agent() as a:
            self.proxy.clear()
            frames = [h.get_frame(f"budget/missing-{tag}-{i}", request_id=i + 1)
                      for i in range(2000)]
            statuses, messages, elapsed = self.flood(a, frames)
            calls = self.proxy.count("GetSecretValue")
            self.assert_bounded(calls, elapsed, statuses, messages)
            self.assertEqual(statuses.count(h.ST_NOT_FOUND), calls)
            # The flooding uid's budget is spent; another uid is served at once.
            self.check_other_uid(a)
            self.assertGreater(a.stats()["limits_upstream_rejected"], 0)

    def test_two_thousand_version_ids_are_bounded_by_the_budget(self):
        name = f"budget/vids-{time.monotonic_ns()}"
        self.sm.create_secret(Name=name, SecretString="v")
        with self.agent() as a:
            self.proxy.clear()
            frames = [h.get_frame(name, request_id=i + 1, version_id=str(uuid.uuid4()))
                      for i in range(2000)]
            statuses, messages, elapsed = self.flood(a, frames)
            calls = self.proxy.count("GetSecretValue")
            self.assert_bounded(calls, elapsed, statuses, messages)
            self.check_other_uid(a)

    def test_concurrent_upstream_connections_never_exceed_the_cap(self):
        cap, n = 4, 40
        tag = time.monotonic_ns()
        names = [f"budget/cap-{tag}-{i}" for i in range(n)]
        for i, name in enumerate(names):
            self.sm.create_secret(Name=name, SecretString=f"value-{i}")
        # 40 calls of 0.3 s through 4 connections queue for 3 s and more (much more under
        # ASan on a loaded machine): the timeouts are out of the way, the cap is the subject.
        with self.agent(aws_extra=f"max_connections = {cap}\nupstream_timeout = 120\n"
                                  "request_timeout = 60\n",
                        limits="upstream_burst_per_uid = 1000\n") as a:
            self.proxy.clear()
            self.proxy.reset_peaks()
            self.proxy.inject("GetSecretValue", *[aws_moto.Fault("delay", seconds=0.3)] * n)
            socks = [a.connect(timeout=60) for _ in range(n)]
            try:
                for i, s in enumerate(socks):
                    s.sendall(h.get_frame(names[i], request_id=i + 1))
                for i, s in enumerate(socks):
                    r = h.read_reply(s)
                    self.assertEqual((r.status, r.get(h.T_SECRET_STRING)),
                                     (h.ST_OK, f"value-{i}".encode()), r.message)
            finally:
                for s in socks:
                    s.close()
            self.assertEqual(self.proxy.count("GetSecretValue"), n)
            print(f"\n  {n} cold reads at once: at most {self.proxy.peak('connections')}"
                  f" upstream connections and {self.proxy.peak('requests')} requests in flight"
                  f" (cap {cap})", file=sys.stderr)
            self.assertLessEqual(self.proxy.peak("connections"), cap)
            self.assertLessEqual(self.proxy.peak("requests"), cap)
            self.assertGreaterEqual(self.proxy.peak("requests"), 2)  # they did overlap


if __name__ == "__main__":
    unittest.main()
