"""The cache in front of the aws backend, counted at a proxy in front of moto_server:
single-flight (200 concurrent cold reads, one GetSecretValue), and a label move
seen after ttl with no upstream call in between.
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

RUN = aws_moto.have_moto() and h.have_binaries()
MOTO = None


def setUpModule():
    global MOTO
    if RUN:
        MOTO = aws_moto.Moto().start()


def tearDownModule():
    if MOTO is not None:
        MOTO.stop()


@unittest.skipUnless(RUN, "needs boto3, moto_server, build/smcached and build/smcache")
class AwsCache(unittest.TestCase):
    N = 200

    def setUp(self):
        self.sm = MOTO.client()
        self.proxy = aws_moto.FaultProxy(MOTO.port).start()

    def tearDown(self):
        self.proxy.stop()

    def agent(self, cache_extra=""):
        return aws_moto.AwsAgent(endpoint=self.proxy.url,
                                 cache_extra="negative_ttl = 0\n" + cache_extra,
                                 agent_extra="max_connections = 1024\n",
                                 env=None)

    def test_two_hundred_cold_reads_cause_one_get_secret_value(self):
        name = f"sf/db-{time.monotonic_ns()}"
        self.sm.create_secret(Name=name, SecretString="single-flight-value")
        want = self.sm.get_secret_value(SecretId=name)["SecretString"].encode()
        a = self.agent()
        with a:
            socks = [a.connect() for _ in range(self.N)]
            try:
                deadline = time.monotonic() + 10
                while a.stats()["connections_active"] < self.N + 1:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.01)
                self.proxy.clear()
                # The upstream answers slowly, so every request arrives while the
                # first fetch is still in flight.
                self.proxy.inject("GetSecretValue", aws_moto.Fault("delay", seconds=1.0))
                barrier = threading.Barrier(4)

                def send(part):
                    barrier.wait()
                    for i in range(part, self.N, 4):
                        socks[i].sendall(h.get_frame(name, request_id=i))

                threads = [threading.Thread(target=send, args=(p,)) for p in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                for i, s in enumerate(socks):
                    r = h.read_reply(s)
                    self.assertEqual((r.status, r.request_id), (h.ST_OK, i), r.message)
                    self.assertEqual(r.get(h.T_SECRET_STRING), want)
            finally:
                for s in socks:
                    s.close()
            self.assertEqual(self.proxy.count("GetSecretValue"), 1)
            st = a.stats()
            self.assertEqual(st["upstream_get_ok"], 1, st)
            self.assertEqual(st["cache_single_flight_joins"] + st["cache_hits"], self.N - 1, st)
            self.assertGreater(st["cache_single_flight_joins"], self.N // 2, st)

    def test_label_move_seen_after_ttl_with_no_calls_in_between(self):
        name = f"ttl/db-{time.monotonic_ns()}"
        self.sm.create_secret(Name=name, SecretString="first")
        a = self.agent("ttl = 2\nrefresh_ahead = 0\n")
        with a:
            self.assertEqual(a.get(name)[1], b"first")
            self.proxy.clear()
            self.sm.put_secret_value(SecretId=name, SecretString="second")
            moved = time.monotonic()
            # Within ttl: answered from the cache, the upstream is not asked.
            while time.monotonic() - moved < 1.0:
                self.assertEqual(a.get(name)[1], b"first")
            self.assertEqual(self.proxy.count("GetSecretValue"), 0)
            # After ttl: the new AWSCURRENT.
            while time.monotonic() - moved < 6 and a.get(name)[1] != b"second":
                time.sleep(0.1)
            self.assertEqual(a.get(name)[1], b"second")
            self.assertLess(time.monotonic() - moved, 3.5)
            self.assertEqual(a.get(name, "--version-stage", "AWSPREVIOUS")[1], b"first")


if __name__ == "__main__":
    unittest.main()
