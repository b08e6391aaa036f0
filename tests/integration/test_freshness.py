"""Freshness through the real agent and the file backend: refresh-ahead,
forced refresh, stale-if-error within max_stale, definitive answers, prefetch.

The file backend is the upstream here: making its file invalid makes every
fetch fail with "upstream unavailable", as a dead Secrets Manager would.
(The same behaviours against moto_server behind a fault-injecting proxy are
in test_resilience.py.)
"""
import json
import os
import time
import unittest

import smc_harness as h

V1 = "11111111-1111-1111-1111-111111111111"
V2 = "22222222-2222-2222-2222-222222222222"
V3 = "33333333-3333-3333-3333-333333333333"


def secrets(current="v2-value", current_id=V2, deleted=False):
    versions = [h.version(V1, ["AWSPREVIOUS"], string="v1-value")]
    if current_id == V2:
        versions.append(h.version(V2, ["AWSCURRENT"], string=current))
    else:
        versions[0]["VersionStages"] = []
        versions.append(h.version(V2, ["AWSPREVIOUS"], string="v2-value"))
        versions.append(h.version(current_id, ["AWSCURRENT"], string=current))
    s = h.secret("app/db", versions)
    if deleted:
        s["DeletedDate"] = 1800000000
    return [s, h.secret("app/other", [h.version(V1, ["AWSCURRENT"], string="other")])]



def upstream_calls(st):
    return (st["upstream_get_ok"] + st["upstream_get_error"] + st["upstream_describe_ok"] +
            st["upstream_describe_error"])


def get(agent, sid="app/db", **kw):
    return agent.request(h.get_frame(sid, request_id=3, **kw))


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class Freshness(unittest.TestCase):
    def test_refresh_ahead_keeps_hot_secret_fresh_with_few_upstream_calls(self):
        cfg = "[cache]\nttl = 2\nrefresh_ahead = 50\nrefresh_jitter = 0\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            self.assertEqual(get(a).get(h.T_SECRET_STRING), b"v2-value")
            base = a.stats()
            reads, start = 0, time.monotonic()
            while time.monotonic() - start < 5:
                r = get(a)
                self.assertEqual(r.status, h.ST_OK)
                self.assertEqual(r.flags & 1, 0, "a hot secret is never stale")
                reads += 1
                time.sleep(0.01)
            st = a.stats()
            # Every read after the first was a hit: refresh kept the label trusted.
            self.assertEqual(st["cache_misses"], base["cache_misses"], st)
            self.assertGreaterEqual(st["cache_hits"] - base["cache_hits"], reads)
            # One DescribeSecret per second (half of ttl 2 s), no GetSecretValue:
            # the version did not change.
            refreshes = st["cache_refreshes"] - base["cache_refreshes"]
            self.assertGreaterEqual(refreshes, 3, st)
            self.assertLessEqual(refreshes, 7, st)
            self.assertEqual(st["upstream_get_ok"], base["upstream_get_ok"], st)
            self.assertEqual(st["cache_refresh_fetches"], 0)

    def test_rotation_seen_within_ttl_and_previous_is_old_current(self):
        cfg = "[cache]\nttl = 2\nrefresh_ahead = 50\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            self.assertEqual(get(a).get(h.T_SECRET_STRING), b"v2-value")
            a.write_secrets(secrets(current="v3-value", current_id=V3))
            changed = time.monotonic()
            while time.monotonic() - changed < 5 and get(a).get(h.T_SECRET_STRING) != b"v3-value":
                time.sleep(0.05)
            self.assertEqual(get(a).get(h.T_SECRET_STRING), b"v3-value")
            self.assertLess(time.monotonic() - changed, 2.5)
            self.assertEqual(get(a, stage="AWSPREVIOUS").get(h.T_SECRET_STRING), b"v2-value")
            # Only the new version was fetched; the describe told us the rest.
            self.assertGreaterEqual(a.stats()["cache_refresh_fetches"], 1)

    def test_cold_secret_is_left_to_expire(self):
        cfg = "[cache]\nttl = 1\nrefresh_ahead = 50\nrefresh_idle = 1\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            get(a, "app/other")
            time.sleep(3)
            # Not read for longer than refresh_idle: at most the first refresh happened.
            self.assertLessEqual(a.stats()["cache_refreshes"], 1)

    def test_forced_refresh_sees_a_change_at_once_and_is_rate_limited(self):
        cfg = "[cache]\nttl = 300\nmin_refresh_interval = 2\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            self.assertEqual(a.cli("get", "app/db").stdout, b"v2-value")
            a.write_secrets(secrets(current="v3-value", current_id=V3))
            # The cache trusts its label for 300 s ...
            self.assertEqual(a.cli("get", "app/db").stdout, b"v2-value")
            # ... unless asked to refresh.
            p = a.cli("refresh", "app/db")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(V3.encode(), p.stdout)
            self.assertEqual(a.cli("get", "app/db").stdout, b"v3-value")
            # Again within min_refresh_interval: refused, clearly, nothing asked upstream.
            before = upstream_calls(a.stats())
            p = a.cli("get", "app/db", "--refresh")
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"try again later", p.stderr)
            self.assertEqual(upstream_calls(a.stats()), before)
            st = a.stats()
            self.assertEqual(st["cache_forced_refreshes"], 1)
            self.assertGreaterEqual(st["cache_forced_refreshes_limited"], 1)
            time.sleep(2.1)
            self.assertEqual(a.cli("get", "app/db", "--refresh").stdout, b"v3-value")
            # An unknown secret cannot be used to hammer the upstream either.
            self.assertEqual(a.cli("refresh", "nope").returncode, 3)
            self.assertEqual(a.cli("refresh", "nope").returncode, 1)

    def test_stale_if_error_until_max_stale_then_unavailable_then_recovery(self):
        cfg = "[cache]\nttl = 1\nrefresh_ahead = 50\nmax_stale = 3\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            self.assertEqual(get(a).get(h.T_SECRET_STRING), b"v2-value")
            good = open(a.secrets_path).read()
            with open(a.secrets_path, "w") as f:
                f.write("{ broken")
            broke = time.monotonic()
            stale_seen = False
            while time.monotonic() - broke < 3.6:
                r = get(a)
                # Within ttl + max_stale every read still succeeds ...
                self.assertEqual(r.status, h.ST_OK, r.message)
                self.assertEqual(r.get(h.T_SECRET_STRING), b"v2-value")
                stale_seen |= bool(r.flags & 1)
                time.sleep(0.05)
            self.assertTrue(stale_seen, "reads past ttl are marked stale")
            p = a.cli("get", "app/db")
            self.assertEqual(p.returncode, 0)
            self.assertIn(b"warning", p.stderr)
            # ... past it, they fail cleanly.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and get(a).status == h.ST_OK:
                time.sleep(0.1)
            r = get(a)
            self.assertEqual(r.status, h.ST_UPSTREAM_UNAVAILABLE, r.message)
            self.assertEqual(a.cli("get", "app/db").returncode, 5)
            st = a.stats()
            self.assertGreater(st["cache_stale_serves"], 0)
            self.assertGreater(st["cache_backoffs"], 0)
            # The upstream comes back: served fresh again without a restart.
            with open(a.secrets_path, "w") as f:
                f.write(good)
            deadline = time.monotonic() + 70
            while time.monotonic() < deadline:
                r = get(a)
                if r.status == h.ST_OK and not r.flags & 1:
                    break
                time.sleep(0.2)
            self.assertEqual((r.status, r.flags & 1), (h.ST_OK, 0), r.message)

    def test_deleted_secret_ends_stale_service_at_once(self):
        cfg = "[cache]\nttl = 1\nrefresh_ahead = 50\nmax_stale = 60\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            self.assertEqual(get(a).status, h.ST_OK)
            a.write_secrets(secrets(deleted=True))
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and get(a).status == h.ST_OK:
                time.sleep(0.05)
            r = get(a)
            self.assertEqual(r.status, h.ST_NOT_FOUND, r.message)
            self.assertIn(b"deletion", r.get(h.T_MESSAGE))

    def test_prefetch_makes_the_first_read_a_hit(self):
        cfg = "[cache]\nprefetch = app/db, app/other\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and a.stats()["cache_entries"] < 2:
                time.sleep(0.02)
            before = a.stats()
            self.assertEqual(before["cache_prefetches"], 2)
            self.assertEqual(get(a).get(h.T_SECRET_STRING), b"v2-value")
            self.assertEqual(get(a, "app/other").get(h.T_SECRET_STRING), b"other")
            after = a.stats()
            self.assertEqual(after["cache_misses"], before["cache_misses"])
            self.assertEqual(after["cache_hits"], before["cache_hits"] + 2)


if __name__ == "__main__":
    unittest.main()
