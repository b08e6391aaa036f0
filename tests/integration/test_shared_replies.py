"""GET replies answered from the cache's shared per-pass bodies are the same
bytes as replies built whole (the first fetch), apart from each reply's own
request id and STALE flag: pipelined, across connections, by every spelling
of a secret id, for strings and binaries, for versions labelled otherwise,
and while served stale.
"""
import os
import socket
import struct
import threading
import time
import unittest

import smc_harness as h

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-Ab12Cd"
UUID_CUR = "3c7d9a52-1f0b-4e8a-9d2c-5b6e7f8a9b0c"
UUID_PREV = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"     # not a canonical UUID: kept as a string


def read_frame(sock):
    (n,) = struct.unpack(">I", h.recv_exact(sock, 4))
    return struct.pack(">I", n) + h.recv_exact(sock, n)


def request_id(frame):
    return struct.unpack_from(">I", frame, 8)[0]


def flags(frame):
    return struct.unpack_from(">H", frame, 6)[0]


def normalized(frame):
    """The frame with request id and flags zeroed: what every reply shares."""
    return frame[:6] + b"\0\0" + b"\0\0\0\0" + frame[12:]


def secrets():
    return [
        h.secret("app/db", [
            h.version(UUID_CUR, ["AWSCURRENT", "blue"], string="pw-" + "x" * 1000),
            h.version(UUID_PREV, ["AWSPREVIOUS"], string="old-pw"),
        ], arn=ARN),
        h.secret("app/bin", [h.version("b1", ["AWSCURRENT"], binary=bytes(range(256)) * 4)]),
    ]


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class SharedReplies(unittest.TestCase):
    def test_pipelined_hits_match_the_first_reply(self):
        cases = [
            (("app/db",), {}),
            ((ARN,), {}),
            ((ARN[:-7],), {"stage": "AWSCURRENT"}),
            (("app/db",), {"stage": "blue"}),
            (("app/db",), {"version_id": UUID_CUR}),
            (("app/db",), {"stage": "AWSPREVIOUS"}),
            (("app/db",), {"version_id": UUID_PREV}),
            (("app/bin",), {}),
        ]
        with h.Agent(secrets()) as a:
            firsts = []
            for args, kw in cases:
                with a.connect() as s:
                    s.sendall(h.get_frame(*args, request_id=7, **kw))
                    f = read_frame(s)
                self.assertEqual(h.Reply(f[4:]).status, h.ST_OK, (args, kw))
                self.assertEqual(request_id(f), 7)
                firsts.append(f)
            # The same version by different spellings: the very same bytes.
            self.assertEqual(normalized(firsts[0]), normalized(firsts[1]))
            self.assertEqual(normalized(firsts[0]), normalized(firsts[2]))
            self.assertEqual(normalized(firsts[0]), normalized(firsts[3]))
            self.assertEqual(normalized(firsts[0]), normalized(firsts[4]))
            self.assertEqual(normalized(firsts[5]), normalized(firsts[6]))
            # Now hits, pipelined (many in one loop pass), ids all different.
            with a.connect() as s:
                reqs = []
                for rep in range(40):
                    for i, (args, kw) in enumerate(cases):
                        reqs.append((1000 + rep * len(cases) + i, i))
                s.sendall(b"".join(h.get_frame(*cases[i][0], request_id=rid, **cases[i][1])
                                   for rid, i in reqs))
                for rid, i in reqs:
                    f = read_frame(s)
                    self.assertEqual(request_id(f), rid)
                    self.assertEqual(flags(f), 0)
                    self.assertEqual(normalized(f), normalized(firsts[i]), cases[i])
            st = a.stats()
            self.assertEqual(st["cache_hits"] + st["cache_misses"], 8 + 40 * 8)
            self.assertGreaterEqual(st["cache_hits"], 40 * 8)

    def test_concurrent_connections_get_their_own_ids(self):
        with h.Agent(secrets()) as a:
            with a.connect() as s:
                s.sendall(h.get_frame("app/db", request_id=1))
                first = read_frame(s)
            errors = []

            def client(n):
                try:
                    with a.connect() as s:
                        ids = [n * 100000 + i for i in range(200)]
                        s.sendall(b"".join(h.get_frame("app/db", request_id=i) for i in ids))
                        for i in ids:
                            f = read_frame(s)
                            if request_id(f) != i or normalized(f) != normalized(first):
                                errors.append((n, i, request_id(f)))
                                return
                except OSError as e:
                    errors.append((n, repr(e)))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(errors, [])

    def test_stale_replies_carry_the_flag_and_the_same_fields(self):
        cfg = "[cache]\nttl = 1\nrefresh_ahead = 0\nmax_stale = 60\n"
        with h.Agent(secrets(), config_extra=cfg) as a:
            with a.connect() as s:
                s.sendall(h.get_frame("app/db", request_id=1))
                fresh = read_frame(s)
            self.assertEqual(flags(fresh), 0)
            with open(a.secrets_path, "w") as f:
                f.write("{ broken")
            time.sleep(1.3)
            # The first read past ttl asks the upstream, fails, and is served stale
            # (built whole); once the upstream is known to fail, reads are stale hits.
            with a.connect() as s:
                s.sendall(h.get_frame("app/db", request_id=9))
                f = read_frame(s)
                self.assertEqual((request_id(f), flags(f)), (9, 1))
                self.assertEqual(normalized(f), normalized(fresh))
                before = a.stats()
                s.sendall(b"".join(h.get_frame("app/db", request_id=10 + i) for i in range(50)))
                for i in range(50):
                    f = read_frame(s)
                    self.assertEqual(request_id(f), 10 + i)
                    self.assertEqual(flags(f), 1, f"reply {i} is not marked stale")
                    self.assertEqual(normalized(f), normalized(fresh))
            after = a.stats()
            self.assertEqual(after["cache_hits"] - before["cache_hits"], 50)
            self.assertEqual(after["cache_stale_serves"] - before["cache_stale_serves"], 50)

    def test_a_reader_that_leaves_early_does_not_hurt_the_others(self):
        with h.Agent(secrets()) as a:
            with a.connect() as s:
                s.sendall(h.get_frame("app/bin", request_id=1))
                first = read_frame(s)
            # Many replies queued to a client that reads nothing and leaves.
            s = a.connect()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"".join(h.get_frame("app/bin", request_id=i) for i in range(500)))
            time.sleep(0.3)
            s.close()
            with a.connect() as s2:
                s2.sendall(b"".join(h.get_frame("app/bin", request_id=i) for i in range(100)))
                for i in range(100):
                    f = read_frame(s2)
                    self.assertEqual(request_id(f), i)
                    self.assertEqual(normalized(f), normalized(first))


if __name__ == "__main__":
    unittest.main()
