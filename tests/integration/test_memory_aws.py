"""No plaintext outside guarded memory on the aws path: smcached against moto_server
over plain HTTP and over TLS (a throw-away CA and server certificate, `[aws]
ca_bundle`), with session-token credentials.

Every GetSecretValue body carries the value JSON-escaped (a SecretBinary as
base64) and every request the session token (X-Amz-Security-Token). Those bytes
pass through libcurl's download and header buffers, OpenSSL's record buffers and
our own request/response buffers; all of them must be wiped. After cold reads,
hits, background refreshes, forced refreshes, errors and stale serving, the scan
(test_memory.scan_memory, over /proc/PID/mem) must find none of: the values, their
JSON-escaped forms, the binary's base64 form, the session token, the secret access
key and the SigV4 signing key derived from it.

Two places may hold the credentials and are not counted:
- guarded memory: libsodium's sodium_malloc() areas (a readable mapping between two
  PROT_NONE guard pages), where the credential provider keeps the credentials the
  agent signs with. Values get no such exception.
- the environment block the agent was started with (AWS_SESSION_TOKEN itself, from
  /proc/PID/stat env_start..env_end): what the parent handed over at exec (and,
  in an AddressSanitizer build, the runtime's own copy of it).

TLS is tested twice: moto_server serving HTTPS itself (it closes each connection
after one answer) and a TLS fault proxy in front of moto that keeps connections
open, as Secrets Manager does, so the agent's pooled connections hold TLS buffers.

Also: the agent verifies the TLS certificate (a CA that did not sign it -> error).

Needs root (reading another process's memory); skipped otherwise.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402
from test_memory import is_root, maps_of, scan_memory, under_asan  # noqa: E402

RUN = aws_moto.have_moto() and h.have_binaries() and shutil.which("openssl") is not None
TTL = 2


def guarded_ranges(pid):
    """[(start, end)] of readable mappings that have a PROT_NONE guard mapping right
    before and right after them: libsodium's guarded allocations."""
    maps = maps_of(pid)
    out = []
    for i in range(1, len(maps) - 1):
        prev, cur, nxt = maps[i - 1], maps[i], maps[i + 1]
        if ("r" in cur[2] and prev[1] == cur[0] and cur[1] == nxt[0] and
                prev[2].startswith("---") and nxt[2].startswith("---")):
            out.append((cur[0], cur[1]))
    return out


def env_block(pid):
    """(start, end) of the environment strings the process was started with."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 50 and 51 of proc(5), counted from 1; fields[0] is field 3 (state).
    return int(fields[50 - 3]), int(fields[51 - 3])


def escaped(value):
    """A SecretString as it travels in a GetSecretValue body (JSON string, no quotes)."""
    return json.dumps(value)[1:-1]


class AwsMemoryBase:
    """One moto_server per test (stale serving stops it). TLS: "moto" (moto_server
    serves HTTPS itself, and closes each connection after one answer), "proxy" (HTTPS
    from a fault proxy in front of moto that keeps connections open, as Secrets
    Manager does, so the agent reuses them) or None (plain HTTP through the proxy)."""
    TLS = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="smc-mem-aws-")
        cls.tls = aws_moto.make_tls_files(cls.tmp, "good") if cls.TLS else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.moto = aws_moto.Moto(tls=self.tls if self.TLS == "moto" else None).start()
        self.proxy = None
        if self.TLS != "moto":
            self.proxy = aws_moto.FaultProxy(self.moto.port, tls=self.tls).start()
        self.agent = None
        self.sm = self.moto.client()
        m = secrets.token_hex(16)
        # Quotes, backslashes and control characters: JSON escapes them, so the
        # body carries a form of the value that differs from the value itself.
        self.string = f'pw-"{m}"\\path\n\ttab-{m[::-1]}'
        self.big = "".join(f'"{secrets.token_hex(24)}"\\\n' for _ in range(600))   # ~33 KB
        self.binary = secrets.token_bytes(48)
        self.new_string = f'rotated-"{secrets.token_hex(16)}"\\\n'
        self.token = "IQoJb3JpZ2luX2VjE" + secrets.token_hex(48)   # a session token
        self.secret_key = base64.b64encode(secrets.token_bytes(30)).decode()
        suffix = secrets.token_hex(4)
        self.names = {k: f"mem-aws/{k}-{suffix}" for k in ("string", "big", "binary")}
        self.sm.create_secret(Name=self.names["string"], SecretString=self.string)
        self.sm.create_secret(Name=self.names["big"], SecretString=self.big)
        self.sm.create_secret(Name=self.names["binary"], SecretBinary=self.binary)

    def tearDown(self):
        try:
            if self.agent is not None:
                try:
                    self.agent.stop(check=False)
                finally:
                    self.agent.close()
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            self.moto.stop()

    def start_agent(self, ca=None):
        aws_extra = "upstream_timeout = 3\nrequest_timeout = 2\nconnect_timeout = 1\nmax_retries = 1\n"
        if self.TLS:
            aws_extra += f"ca_bundle = {ca or self.tls[0]}\n"
        endpoint = self.proxy.url if self.proxy is not None else self.moto.url
        self.agent = aws_moto.AwsAgent(
            endpoint=endpoint, secret=self.secret_key, token=self.token, aws_extra=aws_extra,
            # refresh_idle: a secret nobody read for 2 s is no longer refreshed ahead, so the
            # agent goes quiet between the test's phases and a scan can find it idle.
            cache_extra=f"negative_ttl = 0\nttl = {TTL}\nmin_refresh_interval = 0\n"
                        "max_stale = 1h\nmlock = off\nrefresh_idle = 2\n")
        self.agent.start()
        return self.agent

    # ---- what must never be found --------------------------------------------------------

    def value_needles(self):
        out = {}
        for label, v in (("string", self.string), ("new string", self.new_string)):
            out[f"{label}: value"] = v.encode()
            out[f"{label}: JSON-escaped"] = escaped(v).encode()
        for i, part in enumerate((self.big[:64], self.big[16000:16064], self.big[-64:])):
            out[f"big value, part {i}"] = part.encode()
            out[f"big value, part {i}, JSON-escaped"] = escaped(part).encode()
        out["binary: value"] = self.binary
        out["binary: base64"] = base64.b64encode(self.binary)
        return out

    def credential_needles(self):
        """The session token, the secret access key and the SigV4 signing keys derived
        from it (for today and yesterday, UTC): OpenSSL's HMAC contexts held them."""
        out = {"session token": self.token.encode(), "secret access key": self.secret_key.encode()}
        today = datetime.datetime.now(datetime.timezone.utc).date()
        for day in (today, today - datetime.timedelta(days=1)):
            key = ("AWS4" + self.secret_key).encode()
            for part in (day.strftime("%Y%m%d"), aws_moto.REGION, "secretsmanager", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            out[f"signing key {day}"] = key
        return out

    def scan(self):
        """Hits as text lines; credentials may be in guarded memory or the environment block."""
        pid = self.agent.pid()
        creds = self.credential_needles()
        needles = dict(self.value_needles(), **creds)
        allowed = guarded_ranges(pid) + [env_block(pid)]
        hits, scanned, skipped = scan_memory(pid, needles)
        self.assertGreater(scanned, 1 << 20)
        if not under_asan(pid):
            self.assertEqual(skipped, [], "unexpected huge mappings were not scanned")
        # AddressSanitizer's runtime keeps its own copy of /proc/self/environ.
        env_copies = [f"{var}={val}\0".encode() for var, val in (
            ("AWS_SESSION_TOKEN", self.token), ("AWS_SECRET_ACCESS_KEY", self.secret_key))
        ] if under_asan(pid) else []
        creds_allowed = 0
        bad = []
        for name, at, mapping, ctx in hits:
            if name in creds and (any(s <= at < e for s, e in allowed) or
                                  any(c in ctx for c in env_copies)):
                creds_allowed += 1
                continue
            bad.append(f"{name} at 0x{at:x} in [{mapping}]: ...{ctx!r}...")
        return bad, creds_allowed

    def quiet_scan(self, tries=60):
        """A scan while no upstream call is in flight, before and after it.

        A call in flight holds its signed headers (the session token) in libcurl's
        buffers until it ends, when they are wiped: those are not leftovers. With a short
        ttl, refresh-ahead starts calls at any time, so scan between them: the upstream
        counters and the in-flight gauge must be the same before and after the scan."""
        keys = ("upstream_get_ok", "upstream_get_error", "upstream_describe_ok",
                "upstream_describe_error", "upstream_in_flight")
        for _ in range(tries):
            before = {k: self.agent.stats()[k] for k in keys}
            if before["upstream_in_flight"] != 0:
                time.sleep(0.25)
                continue
            result = self.scan()
            after = {k: self.agent.stats()[k] for k in keys}
            if before == after:
                return result
            time.sleep(0.25)
        self.fail(f"the agent never stayed without an upstream call in flight for a scan ({tries} tries)")

    def assert_no_plaintext(self, when):
        bad, _ = self.quiet_scan()
        if bad:
            self.fail(f"{len(bad)} plaintext copies in smcached's memory {when} "
                      f"({self.TLS and 'TLS, ' + self.TLS or 'plain HTTP'}):\n" + "\n".join(bad[:25]))

    # ---- the traffic ----------------------------------------------------------------------

    def get_ok(self, key, *args, want=None):
        code, out, err = self.agent.get(self.names[key], *args)
        self.assertEqual(code, 0, err)
        if want is None:
            want = {"string": self.string, "big": self.big}.get(key, self.binary)
        self.assertEqual(out, want.encode() if isinstance(want, str) else want)

    def read_all(self, *args):
        for key in ("string", "big", "binary"):
            self.get_ok(key, *args)

    def hits(self, n=100):
        with self.agent.connect() as s:
            for i in range(n):
                s.sendall(h.get_frame(self.names[("string", "big", "binary")[i % 3]], request_id=i))
                r = h.read_reply(s)
                self.assertEqual((r.status, r.request_id), (h.ST_OK, i), r.message)

    def test_no_plaintext_after_reads_refreshes_errors_and_stale_serving(self):
        a = self.start_agent()
        # Cold reads, then hits.
        self.read_all()
        self.hits()
        # Forced refreshes: each one a GetSecretValue.
        for _ in range(3):
            self.read_all("--refresh")
        # Background refreshes: kept hot past ttl, while the value changes upstream.
        self.sm.put_secret_value(SecretId=self.names["string"], SecretString=self.new_string)
        deadline = time.monotonic() + 4 * TTL + 5
        while True:
            code, out, err = a.get(self.names["string"])
            self.assertEqual(code, 0, err)
            if out == self.new_string.encode():
                break
            self.assertLess(time.monotonic(), deadline, "the new value was never fetched")
            time.sleep(0.3)
        self.string = self.new_string
        self.hits()
        # Errors: a secret that does not exist, and (through the proxy) injected failures.
        code, _, err = a.get("mem-aws/missing-" + secrets.token_hex(4))
        self.assertNotEqual(code, 0)
        if self.proxy is not None:
            self.proxy.inject("GetSecretValue", aws_moto.Fault.server_error(),
                              aws_moto.Fault.server_error(), aws_moto.Fault.throttle(),
                              aws_moto.Fault.throttle(), aws_moto.Fault("drop"),
                              aws_moto.Fault("drop"))
            for _ in range(3):
                a.get(self.names["string"], "--refresh")
            self.proxy.clear()
        self.read_all("--refresh")
        s = a.stats()
        self.assertGreater(s["cache_hits"], 0, s)
        time.sleep(0.5)
        self.assert_no_plaintext("after reads, refreshes and errors")

        # Stale serving: the upstream goes away; held values are served past ttl.
        self.moto.stop()
        time.sleep(TTL + 0.5)
        for _ in range(3):
            self.read_all()
        code, _, _ = a.get(self.names["string"], "--refresh")
        self.assertGreater(a.stats()["cache_stale_serves"], 0)
        time.sleep(0.5)
        self.assert_no_plaintext("after stale serving")

    def test_the_scan_finds_what_is_there(self):
        # The scan can fail: the credentials the agent signs with lie in guarded
        # memory, where the scan finds them (and lets them be).
        self.start_agent()
        self.read_all()
        bad, creds_allowed = self.scan()
        self.assertGreater(creds_allowed, 0, "the scan did not find the live credentials")


@unittest.skipUnless(RUN, "needs boto3, moto_server, openssl, build/smcached and build/smcache")
@unittest.skipUnless(is_root(), "needs root to read another process's memory")
class NoPlaintextAwsHttp(AwsMemoryBase, unittest.TestCase):
    TLS = None


@unittest.skipUnless(RUN, "needs boto3, moto_server, openssl, build/smcached and build/smcache")
@unittest.skipUnless(is_root(), "needs root to read another process's memory")
class NoPlaintextAwsTls(AwsMemoryBase, unittest.TestCase):
    TLS = "moto"

    def test_tls_is_verified(self):
        # A CA that did not sign moto's certificate: no value, a TLS error.
        other_ca = aws_moto.make_tls_files(self.tmp, "other")[0]
        a = self.start_agent(ca=other_ca)
        code, out, err = a.get(self.names["string"])
        self.assertNotEqual(code, 0)
        self.assertEqual(out, b"")
        self.assertEqual(a.stats().get("upstream_get_ok", 0), 0)
        log = a.read_log()
        self.assertRegex(log, r"(?i)certificate|tls|ssl")


@unittest.skipUnless(RUN, "needs boto3, moto_server, openssl, build/smcached and build/smcache")
@unittest.skipUnless(is_root(), "needs root to read another process's memory")
class NoPlaintextAwsTlsKeepAlive(AwsMemoryBase, unittest.TestCase):
    TLS = "proxy"

    def test_connections_are_reused(self):
        # What makes this class differ from NoPlaintextAwsTls: one connection
        # serves several requests, so its TLS buffers outlive each answer.
        a = self.start_agent()
        self.read_all()
        for _ in range(3):
            self.read_all("--refresh")
        self.assertLess(self.proxy.connections, self.proxy.count("GetSecretValue"))


if __name__ == "__main__":
    unittest.main()
