"""The file backend does not stall the agent (issue 9 section 8).

A 15 MB secrets file (about 19,000 secrets). One client sends 400 GETs for 400
different secrets the cache does not hold (400 backend lookups) on one
connection, pipelined; meanwhile a second client, in its own process, reads a
cached secret in a loop. The second client's p99 latency must stay under
50 ms. (Before the index, each miss parsed the whole file on the event loop,
about 30 ms each: 400 misses blocked everyone for about 12 s.) Also: a change
to the file is picked up within a second.
"""
import json
import multiprocessing
import os
import socket
import struct
import time
import unittest

import smc_harness as h

# tests/run_tests.py runs this file alone: it measures latency.
SMCACHE_RUN_ALONE = True

V1 = "11111111-1111-1111-1111-111111111111"
MISSES = 400
P99_BOUND_MS = 50.0
FILE_BYTES = 15 * 1000 * 1000


def build_secrets():
    filler = "x" * 700
    out = [h.secret("hot/secret", [h.version(V1, ["AWSCURRENT"], string="hot-value")])]
    i = 0
    size = 0
    while size < FILE_BYTES:
        s = h.secret(f"bulk/{i:06d}", [h.version(V1, ["AWSCURRENT"], string=f"{i}-{filler}")])
        size += len(json.dumps(s)) + 2
        out.append(s)
        i += 1
    return out


def reader(path, stop, out):
    """Reads hot/secret in a loop until stop is set; sends the latencies (ms)."""
    lat = []
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    rid = 0
    while not stop.is_set():
        rid += 1
        t0 = time.monotonic()
        s.sendall(h.get_frame("hot/secret", request_id=rid))
        r = h.read_reply(s)
        lat.append((time.monotonic() - t0) * 1000.0)
        if r.status != h.ST_OK or r.request_id != rid:
            out.put(("error", r.status, r.message))
            return
        time.sleep(0.002)
    s.close()
    out.put(("ok", lat))


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class FileBackendLoad(unittest.TestCase):
    def test_misses_do_not_stall_cached_reads(self):
        secrets = build_secrets()
        # One user's 400 misses: the upstream budget (20/s, burst 200) would refuse half;
        # this test is about the event loop, so the budget is raised out of the way.
        with h.Agent(secrets, config_extra="[cache]\nmax_entries = 100000\n[limits]\n"
                     "upstream_burst_per_uid = 1000\n") as a:
            self.assertGreaterEqual(os.path.getsize(a.secrets_path), FILE_BYTES)
            r = a.request(h.get_frame("hot/secret"))
            self.assertEqual(r.status, h.ST_OK, r.message)
            ctx = multiprocessing.get_context("fork")
            stop, q = ctx.Event(), ctx.Queue()
            p = ctx.Process(target=reader, args=(a.socket, stop, q))
            p.start()
            time.sleep(0.3)
            # 400 misses, pipelined on one connection.
            t0 = time.monotonic()
            with a.connect(timeout=60) as s:
                s.sendall(b"".join(h.get_frame(f"bulk/{i:06d}", request_id=i + 1)
                                   for i in range(MISSES)))
                ok = 0
                for _ in range(MISSES):
                    r = h.read_reply(s)
                    ok += r.status == h.ST_OK
            misses_s = time.monotonic() - t0
            time.sleep(0.3)
            stop.set()
            res = q.get(timeout=30)
            p.join(10)
            self.assertEqual(res[0], "ok", res)
            lat = sorted(res[1])
            p99 = lat[int(len(lat) * 0.99) - 1]
            print(f"\n400 misses against {os.path.getsize(a.secrets_path) / 1e6:.1f} MB "
                  f"({len(secrets)} secrets) took {misses_s * 1000:.0f} ms; cached reads "
                  f"meanwhile: n={len(lat)} p50={lat[len(lat) // 2]:.2f} ms p99={p99:.2f} ms "
                  f"max={lat[-1]:.2f} ms", flush=True)
            self.assertEqual(ok, MISSES)
            self.assertLess(p99, P99_BOUND_MS)
            st = a.stats()
            self.assertGreaterEqual(st["upstream_get_ok"], MISSES)

    def test_change_picked_up_within_a_second(self):
        with h.Agent([h.secret("a", [h.version(V1, ["AWSCURRENT"], string="one")])],
                     config_extra="[cache]\nttl = 1\nrefresh_ahead = 0\n") as a:
            self.assertEqual(a.request(h.get_frame("a")).get(h.T_SECRET_STRING), b"one")
            # In place, same size: only the content and the times change.
            with open(a.secrets_path) as f:
                text = f.read()
            with open(a.secrets_path, "r+") as f:
                f.write(text.replace('"one"', '"two"'))
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:
                r = a.request(h.get_frame("b-missing"))     # a miss: asks the backend
                r = a.request(h.get_frame("a"))
                if r.get(h.T_SECRET_STRING) == b"two":
                    break
                time.sleep(0.05)
            self.assertEqual(r.get(h.T_SECRET_STRING), b"two")
            # ttl is 1 s: the cache's own expiry bounds this, plus at most a second for the file.
            self.assertLess(time.monotonic() - t0, 2.5)


if __name__ == "__main__":
    unittest.main()
