"""smcached end to end over its Unix socket: values, bad input, bounds, concurrency.

Frames are built by the independent Python codec in smc_harness (written from
proto/PROTOCOL.md), so these tests also check that the spec is enough to write
a client without the C.
"""
import os
import random
import socket
import struct
import subprocess
import threading
import time
import unittest

import smc_harness as h

ARN_DB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"
V1 = "11111111-1111-1111-1111-111111111111"
V2 = "22222222-2222-2222-2222-222222222222"
V3 = "33333333-3333-3333-3333-333333333333"
BIG = "x" * 65536


def sample_secrets():
    return [
        h.secret("app/db", [
            h.version(V1, ["AWSPREVIOUS"], string="old-password"),
            h.version(V2, ["AWSCURRENT", "blue"], string="new-password"),
            h.version(V3, ["AWSPENDING"], string="pending-password"),
        ], arn=ARN_DB),
        h.secret("app/blob", [h.version(V1, ["AWSCURRENT"], binary=bytes(range(256)) * 4)]),
        h.secret("app/big", [h.version(V1, ["AWSCURRENT"], string=BIG)]),
    ]


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AgentValues(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return h.Agent(sample_secrets())

    def get(self, secret_id, **kw):
        return self.agent.request(h.get_frame(secret_id, request_id=77, **kw))

    def test_get_current_by_name_arn_partial_arn(self):
        for sid in ("app/db", ARN_DB, ARN_DB[:-7]):
            r = self.get(sid)
            self.assertEqual(r.status, h.ST_OK, r.message)
            self.assertEqual(r.op, h.OP_GET | h.OP_REPLY)
            self.assertEqual(r.request_id, 77)
            self.assertEqual(r.get(h.T_SECRET_STRING), b"new-password")
            self.assertEqual(r.get(h.T_ARN).decode(), ARN_DB)
            self.assertEqual(r.get(h.T_NAME), b"app/db")
            self.assertEqual(r.get(h.T_VERSION_ID).decode(), V2)
            self.assertEqual(sorted(r.all(h.T_VERSION_STAGE)), [b"AWSCURRENT", b"blue"])

    def test_get_by_stage_and_version_id(self):
        self.assertEqual(self.get("app/db", stage="AWSPREVIOUS").get(h.T_SECRET_STRING), b"old-password")
        self.assertEqual(self.get("app/db", stage="AWSPENDING").get(h.T_SECRET_STRING), b"pending-password")
        self.assertEqual(self.get("app/db", stage="blue").get(h.T_SECRET_STRING), b"new-password")
        self.assertEqual(self.get("app/db", version_id=V1).get(h.T_SECRET_STRING), b"old-password")
        self.assertEqual(self.get("app/db", version_id=V1, stage="AWSPREVIOUS").get(h.T_SECRET_STRING),
                         b"old-password")

    def test_not_found_variants(self):
        for kw in ({}, {"stage": "NOPE"}, {"version_id": "44444444-4444-4444-4444-444444444444"},
                   {"version_id": V1, "stage": "AWSCURRENT"}):
            sid = "missing/secret" if not kw else "app/db"
            r = self.get(sid, **kw)
            self.assertEqual(r.status, h.ST_NOT_FOUND, (sid, kw, r.message))
            self.assertEqual(r.request_id, 77)
            self.assertTrue(r.message)
            self.assertIsNone(r.get(h.T_SECRET_STRING))

    def test_binary_and_max_size_values(self):
        r = self.get("app/blob")
        self.assertEqual(r.get(h.T_SECRET_BINARY), bytes(range(256)) * 4)
        self.assertIsNone(r.get(h.T_SECRET_STRING))
        self.assertEqual(self.get("app/big").get(h.T_SECRET_STRING), BIG.encode())

    def test_ping_and_stats(self):
        r = self.agent.request(h.frame(h.OP_PING, 5))
        self.assertEqual((r.status, r.request_id), (h.ST_OK, 5))
        self.assertTrue(r.get(h.T_AGENT_VERSION).startswith(b"smcached "))
        stats = self.agent.stats()
        self.assertGreaterEqual(stats["requests_total"], 2)
        self.assertGreaterEqual(stats["connections_active"], 1)
        self.assertIn("upstream_get_ok", stats)

    def test_pipelined_requests_all_answered_with_their_ids(self):
        ids = list(range(1000, 1200))
        with self.agent.connect() as s:
            s.sendall(b"".join(
                h.get_frame("app/db" if i % 3 else "missing", request_id=i,
                            stage="AWSPREVIOUS" if i % 2 else None) for i in ids))
            seen = {}
            for _ in ids:
                r = h.read_reply(s)
                seen[r.request_id] = r
        self.assertEqual(sorted(seen), ids)
        for i, r in seen.items():
            if i % 3 == 0:
                self.assertEqual(r.status, h.ST_NOT_FOUND)
            else:
                self.assertEqual(r.get(h.T_SECRET_STRING),
                                 b"old-password" if i % 2 else b"new-password")

    def test_fifty_concurrent_clients(self):
        errors = []

        def client(n):
            try:
                with self.agent.connect() as s:
                    for i in range(40):
                        stage = ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING")[(n + i) % 3]
                        s.sendall(h.get_frame("app/db", request_id=n * 1000 + i, stage=stage))
                        r = h.read_reply(s)
                        want = {"AWSCURRENT": b"new-password", "AWSPREVIOUS": b"old-password",
                                "AWSPENDING": b"pending-password"}[stage]
                        if r.request_id != n * 1000 + i or r.get(h.T_SECRET_STRING) != want:
                            errors.append((n, i, r.status, r.message))
                # The CLI too, from every fifth client.
                if n % 5 == 0:
                    p = self.agent.cli("get", "app/db")
                    if p.returncode != 0 or p.stdout != b"new-password":
                        errors.append((n, "cli", p.returncode, p.stderr))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append((n, repr(exc)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AgentBadInput(h.SharedAgentTest):
    """Every bad input gets an error reply or a closed connection; others never notice."""

    @classmethod
    def make_agent(cls):
        return h.Agent(sample_secrets())

    def assert_agent_healthy(self):
        r = self.agent.request(h.get_frame("app/db", request_id=9))
        self.assertEqual(r.get(h.T_SECRET_STRING), b"new-password")

    def test_oversized_length_gets_too_large_then_close(self):
        with self.agent.connect() as s:
            s.sendall(struct.pack(">I", h.MAX_BODY + 1) + b"\0" * 16)
            r = h.read_reply(s)
            self.assertEqual(r.status, h.ST_TOO_LARGE)
            self.assertEqual(r.request_id, 0)
            self.assertIn("exceeds", r.message)
            self.assertTrue(h.wait_closed(s))
        self.assert_agent_healthy()

    def test_length_below_header_gets_bad_request_then_close(self):
        for n in (0, 1, 9):
            with self.agent.connect() as s:
                s.sendall(struct.pack(">I", n) + b"\1" * n)
                r = h.read_reply(s)
                self.assertEqual(r.status, h.ST_BAD_REQUEST, n)
                self.assertTrue(h.wait_closed(s))
        self.assert_agent_healthy()

    def test_truncated_body_then_disconnect(self):
        with self.agent.connect() as s:
            f = h.get_frame("app/db")
            s.sendall(f[:len(f) - 3])
        self.assert_agent_healthy()

    def test_malformed_bodies_get_error_and_connection_stays_open(self):
        cases = [
            (h.frame(0x7f, 21), h.ST_UNSUPPORTED),                        # unknown op
            (h.frame(h.OP_PING, 22, version=2), h.ST_UNSUPPORTED),       # unknown version
            (h.frame(h.OP_GET, 23, h.field(0x0777, b"x") + h.field(h.T_SECRET_ID, "a")),
             h.ST_BAD_REQUEST),                                           # unknown field
            (h.frame(h.OP_GET, 24), h.ST_BAD_REQUEST),                    # missing secret id
            (h.frame(h.OP_GET, 25, h.field(h.T_SECRET_ID, "a") + h.field(h.T_SECRET_ID, "b")),
             h.ST_BAD_REQUEST),                                           # duplicate field
            (h.frame(h.OP_GET, 26, h.field(h.T_SECRET_ID, "a")[:-1] + b"\xff\xff"),
             h.ST_BAD_REQUEST),                                           # field overruns body
            (h.frame(h.OP_GET, 27, h.field(h.T_SECRET_ID, b"a\0b")), h.ST_BAD_REQUEST),
            (h.frame(h.OP_GET, 28, h.field(h.T_SECRET_ID, b"\xc3\x28")), h.ST_BAD_REQUEST),
            (h.frame(h.OP_GET, 29, h.field(h.T_SECRET_ID, "x" * 2049)), h.ST_BAD_REQUEST),
            (h.frame(h.OP_PING, 30, h.field(h.T_SECRET_ID, "a")), h.ST_BAD_REQUEST),
            (h.frame(h.OP_PING | h.OP_REPLY, 31), h.ST_BAD_REQUEST),
            (h.frame(h.OP_PING, 32, flags=0x4000), h.ST_BAD_REQUEST),
            (h.frame(h.OP_PING, 33, status=3), h.ST_BAD_REQUEST),
            (h.frame(h.OP_GET, 34, h.field(h.T_SECRET_ID, "a") + b"\0\1"), h.ST_BAD_REQUEST),
        ]
        with self.agent.connect() as s:
            for raw, status in cases:
                rid = struct.unpack(">I", raw[8:12])[0]
                s.sendall(raw)
                r = h.read_reply(s)
                self.assertEqual(r.status, status, (rid, r.message))
                self.assertEqual(r.request_id, rid)
                self.assertTrue(r.message, rid)
            # Still open and serving on the same connection.
            s.sendall(h.get_frame("app/db", request_id=99))
            self.assertEqual(h.read_reply(s).get(h.T_SECRET_STRING), b"new-password")

    def test_ignorable_unknown_field_is_skipped(self):
        r = self.agent.request(h.frame(h.OP_GET, 40, h.field(0x8123, b"future") +
                                       h.field(h.T_SECRET_ID, "app/db")))
        self.assertEqual(r.status, h.ST_OK, r.message)

    def test_garbage_from_many_clients(self):
        rng = random.Random(1234)

        def spray():
            for _ in range(20):
                try:
                    with self.agent.connect() as s:
                        s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))))
                        s.settimeout(0.2)
                        try:
                            s.recv(4096)
                        except (socket.timeout, ConnectionResetError):
                            pass
                except OSError:
                    pass

        threads = [threading.Thread(target=spray) for _ in range(10)]
        for t in threads:
            t.start()
        self.assert_agent_healthy()
        for t in threads:
            t.join(60)
        self.assert_agent_healthy()

    def test_disconnect_mid_reply(self):
        for _ in range(20):
            with self.agent.connect() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"".join(h.get_frame("app/big", request_id=i) for i in range(30)))
                s.recv(100)   # read a little of the first reply, then vanish
        self.assert_agent_healthy()

    def test_no_descriptor_leak(self):
        self.assert_agent_healthy()
        before = self.agent.open_fds()
        for i in range(300):
            with self.agent.connect() as s:
                if i % 2:
                    s.sendall(h.get_frame("app/db", request_id=i))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.agent.open_fds() > before:
            time.sleep(0.05)
        self.assertLessEqual(self.agent.open_fds(), before)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AgentBounds(unittest.TestCase):
    def test_idle_connection_is_closed(self):
        a = h.Agent(sample_secrets(), agent_extra="idle_timeout = 1\n")
        with a:
            with a.connect() as s:
                start = time.monotonic()
                self.assertTrue(h.wait_closed(s, timeout=5))
                self.assertLess(time.monotonic() - start, 4)
            # A slow sender of a partial frame is not kept forever either.
            with a.connect() as s:
                s.sendall(b"\0\0")
                self.assertTrue(h.wait_closed(s, timeout=5))
            r = a.request(h.get_frame("app/db"))
            self.assertEqual(r.status, h.ST_OK)

    def test_connection_cap(self):
        a = h.Agent(sample_secrets(), agent_extra="max_connections = 5\n")
        with a:
            # The start-up probe's connection must be gone before we count to five.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and a.stats()["connections_active"] > 1:
                time.sleep(0.02)
            held = [a.connect() for _ in range(5)]
            try:
                for s in held:   # make sure all five are accepted
                    s.sendall(h.frame(h.OP_PING, 1))
                    self.assertEqual(h.read_reply(s).status, h.ST_OK)
                with a.connect() as extra:
                    r = h.read_reply(extra)
                    self.assertEqual(r.status, h.ST_LIMIT_EXCEEDED)
                    self.assertTrue(h.wait_closed(extra))
            finally:
                for s in held:
                    s.close()
            time.sleep(0.2)
            self.assertEqual(a.request(h.frame(h.OP_PING, 2)).status, h.ST_OK)

    def test_client_that_never_reads_is_bounded(self):
        with h.Agent(sample_secrets()) as a:
            rss_before = _rss_kib(a.pid())
            hog = a.connect()
            hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            hog.setblocking(False)
            sent = 0
            req = b"".join(h.get_frame("app/big", request_id=i) for i in range(50))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    sent += hog.send(req)
                except BlockingIOError:
                    time.sleep(0.05)
            # The agent stopped reading this client once its replies piled up ...
            self.assertLess(sent, 2000 * len(req))
            # ... kept its memory bounded (default max_output is 4 MiB) ...
            self.assertLess(_rss_kib(a.pid()) - rss_before, 64 * 1024)
            # ... and everybody else is served normally meanwhile.
            for i in range(20):
                self.assertEqual(a.request(h.get_frame("app/db", request_id=i)).status, h.ST_OK)
            hog.close()


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AgentLifecycle(unittest.TestCase):
    def test_stale_socket_replaced_live_one_not_stolen(self):
        a = h.Agent(sample_secrets())
        # A stale socket file: bound once, nobody listening.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a.socket)
        s.close()
        with a:
            self.assertEqual(a.request(h.frame(h.OP_PING)).status, h.ST_OK)
            b = h.Agent(sample_secrets())
            with open(b.config, "w") as f:
                f.write(f"[agent]\nsocket = {a.socket}\n[file]\npath = {a.secrets_path}\n")
            p = subprocess.run([h.SMCACHED, "-c", b.config], capture_output=True, timeout=10)
            b.close()
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"another agent is listening", p.stderr)
            self.assertEqual(a.request(h.frame(h.OP_PING)).status, h.ST_OK)
        self.assertFalse(os.path.exists(a.socket), "socket file left behind after shutdown")

    def test_not_a_socket_is_not_replaced(self):
        a = h.Agent(sample_secrets())
        with open(a.socket, "w") as f:
            f.write("precious")
        p = subprocess.run([h.SMCACHED, "-c", a.config], capture_output=True, timeout=10)
        a.close()
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not a socket", p.stderr)

    def test_secrets_file_change_is_seen_after_ttl(self):
        # Secrets Manager semantics: a VersionId's value never changes; an update
        # adds a version and moves AWSCURRENT, which the agent sees within ttl.
        with h.Agent(sample_secrets(), config_extra="[cache]\nttl = 1\n") as a:
            self.assertEqual(a.cli("get", "app/db").stdout, b"new-password")
            secrets = sample_secrets()
            versions = secrets[0]["Versions"]
            versions[0]["VersionStages"] = []
            versions[1]["VersionStages"] = ["AWSPREVIOUS", "blue"]
            versions.append(h.version("44444444-4444-4444-4444-444444444444", ["AWSCURRENT"],
                                      string="rotated"))
            a.write_secrets(secrets)
            start = time.monotonic()
            while time.monotonic() - start < 10 and a.cli("get", "app/db").stdout != b"rotated":
                time.sleep(0.05)
            self.assertEqual(a.cli("get", "app/db").stdout, b"rotated")
            self.assertLess(time.monotonic() - start, 2.5)
            self.assertEqual(a.cli("get", "app/db", "--version-stage", "AWSPREVIOUS").stdout,
                             b"new-password")

    def test_check_config_and_version(self):
        a = h.Agent(sample_secrets())
        try:
            p = subprocess.run([h.SMCACHED, "--check-config", "-c", a.config], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(b"configuration OK", p.stdout)
            with open(a.config, "a") as f:
                f.write("[cache]\nttl = soon\n")
            p = subprocess.run([h.SMCACHED, "--check-config", "-c", a.config], capture_output=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"ttl", p.stderr)
            self.assertRegex(p.stderr, rb"smcached\.conf:\d+:")
            p = subprocess.run([h.SMCACHED, "--version"], capture_output=True)
            self.assertEqual(p.returncode, 0)
            self.assertTrue(p.stdout.startswith(b"smcached "))
            p = subprocess.run([h.SMCACHED, "--bogus"], capture_output=True)
            self.assertEqual(p.returncode, 2)
        finally:
            a.close()

    def test_broken_secrets_file_is_a_startup_error(self):
        a = h.Agent(None)
        with open(a.secrets_path, "w") as f:
            f.write('{"Secrets": [ {"Name": 5} ]')
        try:
            p = subprocess.run([h.SMCACHED, "-c", a.config], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn(a.secrets_path.encode(), p.stderr)
        finally:
            a.close()



def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    unittest.main()
