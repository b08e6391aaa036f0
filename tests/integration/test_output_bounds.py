"""Bounded memory under clients that never read (issue 9, section 6), on the aws backend.

128 connections of one user send GETs of a 64 KiB secret for 10 s and never read:
  - the agent's RSS grows by less than 256 MiB (queued output is bounded per uid and in all,
    [agent] max_output_per_uid / max_output_total, not only per connection);
  - a well-behaved client of the same user meanwhile keeps p99 < 50 ms;
  - 5 s after they leave, RSS is back within 64 MiB of the baseline (buffers do not outlive
    their connection; the heap is trimmed).
And the documented disconnect: a client held at its output bound that reads nothing for
10 s is disconnected (STATS connections_output_closed).
"""
import os
import subprocess
import sys
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

# Saturates both cores for 10 s and measures latency: run alone (tests/run_tests.py).
SMCACHE_RUN_ALONE = True

MIB = 1 << 20
N_CONNS = 128
HOSTILE_S = 10.0

# The hostile user, in its own process (so the GIL does not slow the well-behaved client):
# opens n connections and sends GETs on all of them without ever reading, for secs seconds.
HOSTILE = textwrap.dedent(r"""
    import socket, struct, sys, time
    path, name, n, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    f = struct.pack(">HI", 1, len(name)) + name.encode()
    body = struct.pack(">BBHIH", 1, 2, 0, 1, 0) + f
    # One GET per send, sent apart: the agent handles each in its own loop pass, so the
    # replies do not share a body (received together, they would) and each holds 64 KiB.
    chunk = struct.pack(">I", len(body)) + body
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX); s.connect(path); s.setblocking(False)
        socks.append(s)
    print("connected", flush=True)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        sent = 0
        for s in socks:
            try:
                sent += s.send(chunk)
                time.sleep(0.0002)   # apart, so the replies of each land in their own pass
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass
        if sent == 0:
            time.sleep(0.001)
    print("done", flush=True)
    sys.stdin.readline()      # hold the connections until told to leave
""")

RUN = aws_moto.have_moto() and h.have_binaries()
MOTO = None


def _asan_build():
    with open(h.SMCACHED, "rb") as f:
        return b"__asan_init" in f.read()


# AddressSanitizer keeps freed memory in quarantine: keep it small for the agent (as
# test_abuse.py does), so memory released by clients that left shows in RSS; and its
# allocator returns free pages to the OS every 500 ms rather than every 5 s (its default),
# so the 5 s measurement sees the agent's release and not the instrument's timer.
ASAN_ENV = ({"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
             ":quarantine_size_mb=16:allocator_release_to_os_interval_ms=500"}
            if RUN and _asan_build() else None)


setUpModule, tearDownModule = aws_moto.module_hooks(__name__, RUN)


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@unittest.skipUnless(RUN, "needs boto3, moto_server, build/smcached and build/smcache")
class OutputBounds(unittest.TestCase):
    def setUp(self):
        self.sm = MOTO.client()
        self.name = f"big/value-{time.monotonic_ns()}"
        self.value = (b"0123456789abcdef" * 4096)     # 64 KiB
        self.sm.create_secret(Name=self.name, SecretString=self.value.decode())

    def agent(self):
        return aws_moto.AwsAgent(endpoint=MOTO.url, agent_extra="max_connections = 1024\n",
                                 env=ASAN_ENV)

    def hostile(self, a, n, secs):
        p = subprocess.Popen([sys.executable, "-c", HOSTILE, a.socket, self.name, str(n), str(secs)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().strip(), "connected")
        return p

    def test_clients_that_never_read_cannot_grow_memory(self):
        with self.agent() as a:
            pid = a.pid()
            self.assertEqual(a.get(self.name)[1], self.value)
            well = a.connect(timeout=10)
            well.sendall(h.get_frame(self.name))
            self.assertEqual(h.read_reply(well).status, h.ST_OK)
            time.sleep(0.5)
            baseline = rss(pid)
            peak = [baseline]
            latencies = []
            stop = threading.Event()

            def well_behaved():
                rid = 1
                while not stop.is_set():
                    rid += 1
                    t0 = time.monotonic()
                    well.sendall(h.get_frame(self.name, request_id=rid))
                    r = h.read_reply(well)
                    latencies.append(time.monotonic() - t0)
                    assert r.status == h.ST_OK and r.request_id == rid, r.message
                    peak[0] = max(peak[0], rss(pid))
                    time.sleep(0.005)

            p = self.hostile(a, N_CONNS, HOSTILE_S)
            t = threading.Thread(target=well_behaved)
            t.start()
            try:
                self.assertEqual(p.stdout.readline().strip(), "done")
                peak[0] = max(peak[0], rss(pid))
            finally:
                stop.set()
                t.join(30)
                st = a.stats()
                p.stdin.write("\n")
                p.stdin.flush()
                p.wait(30)
            left = time.monotonic()
            growth = peak[0] - baseline
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            time.sleep(max(0.0, 5.0 - (time.monotonic() - left)))
            after = rss(pid)
            print(f"\n  baseline RSS {baseline / MIB:.0f} MiB, peak +{growth / MIB:.0f} MiB,"
                  f" 5 s after +{(after - baseline) / MIB:.0f} MiB; well-behaved client"
                  f" {len(latencies)} reads, p99 {p99 * 1000:.1f} ms, max"
                  f" {latencies[-1] * 1000:.1f} ms; output queued at the end of the flood"
                  f" {st.get('output_queued_bytes', -1) / MIB:.0f} MiB", file=sys.stderr)
            self.assertLess(growth, 256 * MIB)
            self.assertGreater(len(latencies), 100)
            self.assertLess(p99, 0.050)
            self.assertLess(after - baseline, 64 * MIB)
            self.assertEqual(a.stats().get("output_queued_bytes"), 0)
            well.close()

    def test_a_client_that_reads_nothing_is_disconnected(self):
        with self.agent() as a:
            self.assertEqual(a.get(self.name)[1], self.value)
            p = self.hostile(a, 2, 2.0)
            try:
                self.assertEqual(p.stdout.readline().strip(), "done")
                deadline = time.monotonic() + 20
                while a.stats().get("connections_output_closed", 0) < 2:
                    self.assertLess(time.monotonic(), deadline, a.stats())
                    time.sleep(0.2)
                self.assertIn("unread for 10 s", a.read_log())
            finally:
                p.stdin.write("\n")
                p.stdin.flush()
                p.wait(30)


if __name__ == "__main__":
    unittest.main()
