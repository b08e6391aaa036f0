"""The cache's guarantees through the real agent and the file backend, read off STATS.

- single flight: concurrent cold GETs for one secret cost one upstream fetch;
- labels are trusted for `ttl`, VersionIds for ever; a rotation in the
  secrets file is seen once the ttl has passed;
- "not found" is remembered for `negative_ttl`, and only that long;
- the cache holds at most `max_entries` versions, least recently used out first.

Upstream calls are counted by the backend (upstream_get_ok + upstream_get_error),
independently of the cache's own counters.
"""
import os
import signal
import threading
import time
import unittest

import smc_harness as h

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"
V1 = "11111111-1111-1111-1111-111111111111"
V2 = "22222222-2222-2222-2222-222222222222"
V3 = "33333333-3333-3333-3333-333333333333"
# Plain expiry: no background refresh-ahead and no stale serving, so every
# upstream call counted below is one a reader caused.
PLAIN_TTL = "refresh_ahead = 0\nmax_stale = 0\n"


def db_secret(*versions):
    """app/db with versions given as (VersionId, [stages], value); by default V1 current."""
    versions = versions or ((V1, ["AWSCURRENT"], "value-one"),)
    return h.secret("app/db", [h.version(vid, stages, string=value) for vid, stages, value in versions],
                    arn=ARN)



def upstream_gets(s):
    return s["upstream_get_ok"] + s["upstream_get_error"]


def stop_and_wait(pid, timeout=5.0):
    """SIGSTOP, then wait until the process is really stopped: kill() returns as soon as
    the signal is queued, and a running agent could otherwise still read a request."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


class Counting:
    """Deltas of the agent's counters around a block."""

    def __init__(self, agent):
        self.agent = agent
        self.before = agent.stats()

    def delta(self):
        now = self.agent.stats()
        return {k: now[k] - self.before.get(k, 0) for k in now}


def value_of(agent, secret_id, **kw):
    r = agent.request(h.get_frame(secret_id, **kw))
    if r.status != h.ST_OK:
        return r.status
    return (r.get(h.T_SECRET_STRING) or b"").decode()


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class SingleFlight(unittest.TestCase):
    N = 200

    def setUp(self):
        self.agent = h.Agent([db_secret()])
        self.agent.start()

    def tearDown(self):
        try:
            os.kill(self.agent.pid(), signal.SIGCONT)   # never leave it stopped
            self.agent.stop()
        finally:
            self.agent.close()

    def open_clients(self):
        socks = [self.agent.connect() for _ in range(self.N)]
        # Every connection accepted before any request is sent.
        deadline = time.monotonic() + 10
        while self.agent.stats()["connections_active"] < self.N + 1:
            self.assertLess(time.monotonic(), deadline, "connections were not all accepted")
            time.sleep(0.01)
        return socks

    def collect(self, socks):
        try:
            for i, s in enumerate(socks):
                r = h.read_reply(s)
                self.assertEqual((r.status, r.request_id), (h.ST_OK, i), r.message)
                self.assertEqual(r.get(h.T_SECRET_STRING), b"value-one")
                self.assertEqual(r.get(h.T_VERSION_ID).decode(), V1)
        finally:
            for s in socks:
                s.close()

    def assert_one_fetch(self, d):
        # What holds however the requests interleave: one upstream fetch; every
        # other request either joined it or, once it was done, hit the cache.
        self.assertEqual(upstream_gets(d), 1, d)
        self.assertEqual(d["cache_fetches"], 1)
        self.assertEqual(d["cache_single_flight_joins"] + d["cache_hits"], self.N - 1, d)
        self.assertEqual(d["cache_misses"], 1 + d["cache_single_flight_joins"])
        self.assertEqual(d["replies_ok"], self.N + 1)   # + the STATS reply itself
        self.assertEqual(self.agent.stats()["cache_fetches_in_flight"], 0)

    def test_simultaneous_cold_gets_share_one_fetch(self):
        socks = self.open_clients()
        count = Counting(self.agent)
        # Stopped, the agent sees all requests at once when it resumes: those it
        # reads before the fetch is answered (the file backend answers on the
        # next loop pass) join it, so some joins are certain.
        stop_and_wait(self.agent.pid())
        try:
            for i, s in enumerate(socks):
                s.sendall(h.get_frame("app/db", request_id=i))
        finally:
            os.kill(self.agent.pid(), signal.SIGCONT)
        self.collect(socks)
        d = count.delta()
        self.assert_one_fetch(d)
        self.assertGreater(d["cache_single_flight_joins"], 0, d)

    def test_racing_threads_cause_one_fetch(self):
        socks = self.open_clients()
        count = Counting(self.agent)
        barrier = threading.Barrier(8)

        def send(part):
            barrier.wait()
            for i in range(part, self.N, 8):
                socks[i].sendall(h.get_frame("app/db", request_id=i))

        threads = [threading.Thread(target=send, args=(p,)) for p in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.collect(socks)
        self.assert_one_fetch(count.delta())

    def test_different_keys_one_fetch_each(self):
        keys = [("app/db", {}), ("app/db", {"version_id": V1}), ("app/db", {"stage": "AWSCURRENT"}),
                ("missing", {})]
        socks = self.open_clients()
        count = Counting(self.agent)
        stop_and_wait(self.agent.pid())
        try:
            for i, s in enumerate(socks):
                sid, kw = keys[i % len(keys)]
                s.sendall(h.get_frame(sid, request_id=i, **kw))
        finally:
            os.kill(self.agent.pid(), signal.SIGCONT)
        try:
            for i, s in enumerate(socks):
                r = h.read_reply(s)
                self.assertEqual(r.request_id, i)
                if keys[i % len(keys)][0] == "missing":
                    self.assertEqual(r.status, h.ST_NOT_FOUND)
                else:
                    self.assertEqual(r.get(h.T_SECRET_STRING), b"value-one")
        finally:
            for s in socks:
                s.close()
        d = count.delta()
        # "app/db" and "app/db"+AWSCURRENT are one key (no stage means AWSCURRENT).
        # The VersionId read may be answered from the AWSCURRENT fetch if it
        # comes after it: one or two fetches for app/db, one for "missing".
        self.assertIn(upstream_gets(d), (2, 3), d)
        self.assertEqual(d["upstream_get_error"], 1, d)
        self.assertEqual(d["cache_fetches"], upstream_gets(d))
        self.assertEqual(d["cache_single_flight_joins"] + d["cache_hits"] + d["cache_negative_hits"],
                         self.N - upstream_gets(d), d)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class LabelsAndTtl(unittest.TestCase):
    def test_rotation_in_the_file_is_seen_after_ttl(self):
        with h.Agent([db_secret()], config_extra="[cache]\nttl = 1\n" + PLAIN_TTL) as a:
            count = Counting(a)
            self.assertEqual(value_of(a, "app/db"), "value-one")
            fetched = time.monotonic()
            # One entry, however the secret is named.
            self.assertEqual(value_of(a, ARN), "value-one")
            self.assertEqual(value_of(a, ARN[:-7], stage="AWSCURRENT"), "value-one")
            self.assertEqual(upstream_gets(count.delta()), 1)

            # Rotation: V2 becomes current, V1 previous.
            a.write_secrets([db_secret((V1, ["AWSPREVIOUS"], "value-one"),
                                       (V2, ["AWSCURRENT"], "value-two"))])
            early = value_of(a, "app/db")
            if time.monotonic() - fetched < 0.9:
                # Still within the ttl: answered from the cache, the file not read.
                self.assertEqual(early, "value-one")
                self.assertEqual(upstream_gets(count.delta()), 1)
            time.sleep(max(0.0, fetched + 1.1 - time.monotonic()))
            self.assertEqual(value_of(a, "app/db"), "value-two")
            d = count.delta()
            self.assertEqual(upstream_gets(d), 2 if early == "value-one" else 1)
            # The old version under its new label: one fetch for the label, none for the value.
            self.assertEqual(value_of(a, "app/db", stage="AWSPREVIOUS"), "value-one")
            self.assertEqual(value_of(a, "app/db", stage="AWSPREVIOUS"), "value-one")
            entries = a.stats()["cache_entries"]
            self.assertEqual(entries, 2)
            fetches = upstream_gets(count.delta())

            # A VersionId's value never changes, but whether it still exists and which
            # labels it bears do: past the ttl, reads by VersionId ask again, like
            # label reads (V1 left the file; V2 is AWSPREVIOUS now).
            a.write_secrets([db_secret((V2, ["AWSPREVIOUS"], "value-two"),
                                       (V3, ["AWSCURRENT"], "value-three"))])
            time.sleep(1.1)
            self.assertEqual(value_of(a, "app/db", version_id=V1), h.ST_NOT_FOUND)
            r = a.request(h.get_frame(ARN, version_id=V2))
            self.assertEqual((r.status, r.get(h.T_SECRET_STRING)), (h.ST_OK, b"value-two"))
            self.assertEqual(r.all(h.T_VERSION_STAGE), [b"AWSPREVIOUS"])
            self.assertEqual(upstream_gets(count.delta()), fetches + 2)
            # Labels are checked again too; AWSPREVIOUS was confirmed by the V2 read.
            self.assertEqual(value_of(a, "app/db"), "value-three")
            self.assertEqual(value_of(a, "app/db", stage="AWSPREVIOUS"), "value-two")
            self.assertEqual(upstream_gets(count.delta()), fetches + 3)
            # A stage and a VersionId that no longer match are not served from the cache.
            self.assertEqual(value_of(a, "app/db", version_id=V2, stage="AWSCURRENT"), h.ST_NOT_FOUND)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class NegativeCaching(unittest.TestCase):
    def test_not_found_remembered_for_negative_ttl(self):
        with h.Agent([db_secret()], config_extra="[cache]\nnegative_ttl = 2\n" + PLAIN_TTL) as a:
            count = Counting(a)
            with a.connect() as s:
                for i in range(50):
                    s.sendall(h.get_frame("app/missing", request_id=i))
                    r = h.read_reply(s)
                    self.assertEqual((r.status, r.request_id), (h.ST_NOT_FOUND, i))
            asked = time.monotonic()
            d = count.delta()
            self.assertEqual(upstream_gets(d), 1, d)
            self.assertEqual(d["upstream_get_error"], 1)
            self.assertEqual(d["cache_negative_hits"], 49)
            self.assertEqual(a.stats()["cache_negative_entries"], 1)
            # Created meanwhile: not seen until the window closes ...
            a.write_secrets([db_secret(), h.secret("app/missing", [
                h.version(V1, ["AWSCURRENT"], string="arrived")])])
            if time.monotonic() - asked < 1.5:
                self.assertEqual(value_of(a, "app/missing"), h.ST_NOT_FOUND)
                self.assertEqual(upstream_gets(count.delta()), 1)
            time.sleep(max(0.0, asked + 2.1 - time.monotonic()))
            # ... then asked again, and found.
            self.assertEqual(value_of(a, "app/missing"), "arrived")
            self.assertEqual(upstream_gets(count.delta()), 2)
            self.assertEqual(value_of(a, "app/missing"), "arrived")
            self.assertEqual(upstream_gets(count.delta()), 2)

    def test_pipelined_misses_join_or_hit_the_negative_entry(self):
        with h.Agent([db_secret()], config_extra="[cache]\nnegative_ttl = 2\n" + PLAIN_TTL) as a:
            count = Counting(a)
            with a.connect() as s:
                s.sendall(b"".join(h.get_frame("nope", request_id=i) for i in range(50)))
                for i in range(50):
                    self.assertEqual(h.read_reply(s).status, h.ST_NOT_FOUND)
            d = count.delta()
            self.assertEqual(upstream_gets(d), 1, d)
            self.assertEqual(d["cache_single_flight_joins"] + d["cache_negative_hits"], 49, d)

    def test_negative_ttl_zero_asks_every_time(self):
        with h.Agent([db_secret()], config_extra="[cache]\nnegative_ttl = 0\n" + PLAIN_TTL) as a:
            count = Counting(a)
            for _ in range(5):
                self.assertEqual(value_of(a, "app/missing"), h.ST_NOT_FOUND)
            d = count.delta()
            self.assertEqual(upstream_gets(d), 5)
            self.assertEqual(d["cache_negative_hits"], 0)
            self.assertEqual(a.stats()["cache_negative_entries"], 0)

    def test_unavailable_upstream_is_not_remembered(self):
        with h.Agent([db_secret()], config_extra="[cache]\nnegative_ttl = 60\n" + PLAIN_TTL) as a:
            with open(a.secrets_path, "w") as f:
                f.write("{ broken")
            count = Counting(a)
            for _ in range(3):
                self.assertEqual(value_of(a, "app/db"), h.ST_UPSTREAM_UNAVAILABLE)
            self.assertEqual(upstream_gets(count.delta()), 3)
            a.write_secrets([db_secret()])
            self.assertEqual(value_of(a, "app/db"), "value-one")


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class Bounds(unittest.TestCase):
    def test_max_entries_evicts_least_recently_used(self):
        names = [f"app/s{i}" for i in range(5)]
        secrets = [h.secret(n, [h.version(V1, ["AWSCURRENT"], string=f"value-{n}")]) for n in names]
        with h.Agent(secrets, config_extra="[cache]\nmax_entries = 3\n") as a:
            count = Counting(a)
            for n in names:
                self.assertEqual(value_of(a, n), f"value-{n}")
            d = count.delta()
            self.assertEqual(upstream_gets(d), 5)
            self.assertEqual(d["cache_evictions"], 2)
            s = a.stats()
            self.assertEqual(s["cache_entries"], 3)
            self.assertEqual(s["cache_secrets"], 3)
            # The three most recent are held; s2 is made the most recent.
            for n in (names[2], names[3], names[4], names[2]):
                self.assertEqual(value_of(a, n), f"value-{n}")
            self.assertEqual(upstream_gets(count.delta()), 5)
            # s0 comes back and pushes out s3, now the least recently used.
            self.assertEqual(value_of(a, names[0]), f"value-{names[0]}")
            self.assertEqual(value_of(a, names[2]), f"value-{names[2]}")
            self.assertEqual(value_of(a, names[4]), f"value-{names[4]}")
            self.assertEqual(upstream_gets(count.delta()), 6)
            self.assertEqual(value_of(a, names[3]), f"value-{names[3]}")
            d = count.delta()
            self.assertEqual(upstream_gets(d), 7)
            self.assertEqual(d["cache_evictions"], 4)
            self.assertEqual(a.stats()["cache_entries"], 3)

    def test_max_bytes_bounds_sealed_bytes(self):
        # max_bytes is 256 KiB at least. A 65000-byte value seals to 64 KiB + 40
        # (padded to whole 4 KiB pages, plus nonce and tag): three fit, not four.
        names = [f"big/{i}" for i in range(6)]
        secrets = [h.secret(n, [h.version(V1, ["AWSCURRENT"], string=str(i) * 65000)])
                   for i, n in enumerate(names)]
        with h.Agent(secrets, config_extra="[cache]\nmax_bytes = 256K\n") as a:
            for i, n in enumerate(names):
                self.assertEqual(value_of(a, n), str(i) * 65000)
            s = a.stats()
            self.assertLessEqual(s["cache_sealed_bytes"], 256 * 1024)
            self.assertEqual(s["cache_entries"], 3)
            self.assertEqual(s["cache_evictions"], 3)


if __name__ == "__main__":
    unittest.main()
