"""The HTTP front door ([http]), compatible with the AWS Secrets Manager Agent, with real clients.

- Values: curl with the AWS agent's documented requests, Python urllib and http.client
  written the way that agent's README shows, over TCP (IPv4, IPv6) and the Unix socket;
  every field equal to what boto3 reads from moto for name, full ARN, partial ARN, stages,
  version id, binary and non-ASCII values (aws backend on moto_server).
- The AWS agent's errors: unknown parameter, missing secretId, bad refreshNow (400), missing
  or wrong token (403), X-Forwarded-For (400), POST (405), too many connections (429), not
  found (400 ResourceNotFoundException); ours: a Host that is not a loopback name (400),
  never a CORS header, a caller as another uid (setpriv to nobody) denied by [access] rules
  while the token is right, and audited as such.
- /metrics parsed by a strict exposition-format parser written here: every line valid,
  counters monotonic across scrapes, the numbers equal `smcache stats`.
- 1,000 idle HTTP connections and slowloris headers do not hurt Unix-socket clients.
"""
import base64
import http.client
import json
import math
import os
import pwd
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

# The load test holds 1,000 connections and measures latency.
SMCACHE_RUN_ALONE = True

TOKEN = "test-ssrf-token-0123456789"
HDR = "X-Aws-Parameters-Secrets-Token"
HAVE_IPV6 = socket.has_ipv6
try:
    with socket.socket(socket.AF_INET6) as _s:
        _s.bind(("::1", 0))
except OSError:
    HAVE_IPV6 = False

MOTO = None


setUpModule, tearDownModule = aws_moto.module_hooks(
    __name__, aws_moto.have_moto() and h.have_binaries())


def http_section(port, sock, extra=""):
    lines = f"[http]\nlisten = 127.0.0.1:{port}\n"
    if HAVE_IPV6:
        lines += f"listen = [::1]:{port}\n"
    return lines + f"socket = {sock}\n{extra}"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (Host: localhost, as curl --unix-socket sends)."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def curl(*args, user=None):
    """curl; returns (status, headers text, body bytes)."""
    cmd = ["curl", "-sS", "-D", "-", "--max-time", "10", *args]
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, timeout=20)
    out = r.stdout
    if not out.startswith(b"HTTP/"):
        raise AssertionError(f"curl {args}: no HTTP answer: {r.stderr.decode(errors='replace')}")
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), body


# ---- a strict Prometheus text exposition (0.0.4) parser -----------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE_RE = re.compile(rf"^({NAME})(\{{(?:{LABEL}={LABEL_VALUE}(?:,{LABEL}={LABEL_VALUE})*,?)?\}})?"
                       r" ([^ ]+)(?: (-?\d+))?$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", text):
        raise AssertionError(f"bad sample value {text!r}")
    return float(text)


def parse_exposition(text):
    """{(name, labels): value}, asserting every rule of the format on the way."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples, done_families = {}, {}, {}, set()
    current = None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {lineno}: {line!r}"
        assert line != "", f"empty line ({where})"
        if line.startswith("#"):
            m = HELP_RE.match(line)
            if m:
                assert m.group(1) not in helps, f"second HELP ({where})"
                helps[m.group(1)] = m.group(2)
                continue
            m = TYPE_RE.match(line)
            assert m, f"a comment that is neither HELP nor TYPE ({where})"
            fam = m.group(1)
            assert fam not in types, f"second TYPE ({where})"
            assert fam not in done_families, f"TYPE after the family's samples ({where})"
            types[fam] = m.group(2)
            if current is not None and current != fam:
                done_families.add(current)
            current = fam
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line ({where})"
        name, labels, value = m.group(1), m.group(2) or "", parse_value(m.group(3))
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                fam = name[:-len(suffix)]
        assert fam in types, f"sample before its TYPE ({where})"
        assert fam == current, f"samples of a family not together ({where})"
        if types[fam] == "counter":
            assert name.endswith("_total"), f"counter without _total ({where})"
            assert value >= 0, f"negative counter ({where})"
        key = (name, labels)
        assert key not in samples, f"duplicate series ({where})"
        samples[key] = value
    for fam in types:
        assert fam in helps, f"{fam} has no HELP"
    check_histograms(samples, types)
    return samples, types


def check_histograms(samples, types):
    """Buckets cumulative in le order, ending in +Inf equal to _count, with a _sum."""
    for fam, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                le = re.search(r'le="([^"]*)"', labels).group(1)
                rest = re.sub(r',?le="[^"]*"', "", labels).replace("{,", "{")
                series.setdefault(rest, []).append((parse_value(le), v))
        assert series, f"histogram {fam} has no buckets"
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == math.inf, f"{fam}{rest}: no +Inf bucket"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{fam}{rest}: buckets not cumulative"
            assert samples[(fam + "_count", rest)] == counts[-1], f"{fam}{rest}: +Inf != _count"
            assert (fam + "_sum", rest) in samples, f"{fam}{rest}: no _sum"


# ---- values from moto, through every client ---------------------------------------------

@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(), "needs moto, boto3 and the binaries")
class AwsValuesTest(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        cls.port = aws_moto.free_port()
        cls.tmp = tempfile.mkdtemp(prefix="smc-http-")
        cls.hsock = os.path.join(cls.tmp, "http.sock")
        cls.sm = MOTO.client()
        cls.string_name = f"http/db-{os.getpid()}"
        cls.sm.create_secret(Name=cls.string_name, SecretString='{"user":"app","pw":"s3cr\\"et"}')
        cls.sm.put_secret_value(SecretId=cls.string_name, SecretString="pässwörd ✓ \n\ttab")
        cls.bin_name = f"http/bin-{os.getpid()}"
        cls.sm.create_secret(Name=cls.bin_name, SecretBinary=bytes(range(256)) + b"\x00\xff")
        return aws_moto.AwsAgent(endpoint=MOTO.url, env={"AWS_TOKEN": TOKEN},
                                 cache_extra="negative_ttl = 0\n" + http_section(cls.port, cls.hsock))

    def base(self, host="localhost"):
        return f"http://{host}:{self.port}"

    def expect(self, body, secret_id, **kw):
        """body (the agent's JSON) equals GetSecretValue from boto3, field by field."""
        want = self.sm.get_secret_value(SecretId=secret_id, **kw)
        got = json.loads(body)
        self.assertEqual(got["ARN"], want["ARN"])
        self.assertEqual(got["Name"], want["Name"])
        self.assertEqual(got["VersionId"], want["VersionId"])
        self.assertEqual(got["VersionStages"], want["VersionStages"])
        if "SecretBinary" in want:
            self.assertNotIn("SecretString", got)
            self.assertEqual(base64.b64decode(got["SecretBinary"]), want["SecretBinary"])
        else:
            self.assertNotIn("SecretBinary", got)
            self.assertEqual(got["SecretString"], want["SecretString"])
        # The AWS agent writes CreatedDate as a string of epoch seconds with the fraction.
        self.assertIsInstance(got["CreatedDate"], str)
        self.assertAlmostEqual(float(got["CreatedDate"]), want["CreatedDate"].timestamp(), delta=0.001)
        return got

    def test_curl_documented_requests(self):
        # The AWS agent's README: curl -v -H "X-Aws-Parameters-Secrets-Token: $(cat ...)"
        #   'http://localhost:2773/secretsmanager/get?secretId=<name>'
        status, head, body = curl("-H", f"{HDR}: {TOKEN}",
                                  f"{self.base()}/secretsmanager/get?secretId={self.string_name}")
        self.assertEqual(status, 200)
        self.assertIn("Content-Type: application/json", head)
        self.expect(body, self.string_name)
        status, _, body = curl("-H", f"X-Vault-Token: {TOKEN}", f"{self.base()}/v1/{self.bin_name}")
        self.assertEqual(status, 200)
        self.expect(body, self.bin_name)

    def test_name_arn_partial_arn_stage_version(self):
        arn = self.sm.describe_secret(SecretId=self.string_name)["ARN"]
        partial = arn[:-7]          # without "-XXXXXX"
        prev = self.sm.get_secret_value(SecretId=self.string_name, VersionStage="AWSPREVIOUS")
        for qs, kw in [(f"secretId={arn}", {}),
                       (f"secretId={partial}", {}),
                       (f"secretId={self.string_name}&versionStage=AWSPREVIOUS",
                        {"VersionStage": "AWSPREVIOUS"}),
                       (f"secretId={self.string_name}&versionId={prev['VersionId']}",
                        {"VersionId": prev["VersionId"]}),
                       (f"secretId={self.string_name}&refreshNow=true", {}),
                       (f"secretId={self.string_name}&refreshNow=0", {})]:
            with self.subTest(qs=qs):
                status, _, body = curl("-H", f"{HDR}: {TOKEN}",
                                       f"{self.base()}/secretsmanager/get?{qs}")
                self.assertEqual(status, 200, body)
                self.expect(body, (arn if "arn:" in qs else self.string_name), **kw)
        # The path form with a full ARN (':' and '/' are fine in a path).
        status, _, body = curl("-H", f"{HDR}: {TOKEN}", f"{self.base()}/v1/{arn}?versionStage=AWSCURRENT")
        self.assertEqual(status, 200)
        self.expect(body, arn)

    def test_python_urllib_as_the_readme(self):
        # The way the AWS agent's README writes it for Python.
        url = f"http://localhost:{self.port}/secretsmanager/get?secretId={self.bin_name}"
        req = urllib.request.Request(url, headers={"X-Aws-Parameters-Secrets-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 200)
            got = self.expect(r.read(), self.bin_name)
        self.assertEqual(base64.b64decode(got["SecretBinary"]), bytes(range(256)) + b"\x00\xff")

    def test_http_client_keepalive_tcp_and_unix(self):
        conns = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=10),
                 UnixHTTPConnection(self.hsock)]
        if HAVE_IPV6:
            conns.append(http.client.HTTPConnection("::1", self.port, timeout=10))
        for c in conns:
            with self.subTest(conn=type(c).__name__, host=c.host):
                for _ in range(3):     # several requests on one connection
                    c.request("GET", f"/secretsmanager/get?secretId={self.string_name}",
                              headers={HDR: TOKEN})
                    r = c.getresponse()
                    self.assertEqual(r.status, 200)
                    self.expect(r.read(), self.string_name)
                c.close()

    def test_curl_unix_socket(self):
        status, _, body = curl("--unix-socket", self.hsock, "-H", f"{HDR}: {TOKEN}",
                               f"http://localhost/v1/{self.string_name}")
        self.assertEqual(status, 200)
        self.expect(body, self.string_name)

    def test_not_found_is_the_services_error(self):
        status, head, body = curl("-H", f"{HDR}: {TOKEN}",
                                  f"{self.base()}/secretsmanager/get?secretId=http/nope-{os.getpid()}")
        self.assertEqual(status, 400)
        self.assertIn("Content-Type: application/json", head)
        self.assertEqual(json.loads(body)["__type"], "ResourceNotFoundException")
        status, _, body = curl("-H", f"{HDR}: {TOKEN}", f"{self.base()}/secretsmanager/get?secretId="
                               f"{self.string_name}&versionStage=NOSUCHSTAGE")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["__type"], "ResourceNotFoundException")

    def test_metrics_agree_with_stats(self):
        # Quiet numbers (cache and upstream) must be equal; request counters may move.
        curl("-H", f"{HDR}: {TOKEN}", f"{self.base()}/secretsmanager/get?secretId={self.string_name}")
        stats = self.agent.stats()
        # `smcache stats --json` prints the same numbers as the STATS reply.
        cli = json.loads(self.agent.cli("stats", "--json").stdout)
        for name, value in stats.items():
            if name.startswith("cache_") or name.startswith("upstream_"):
                self.assertEqual(cli[name], value, name)
        _, _, body = curl("-H", f"{HDR}: {TOKEN}", f"{self.base()}/metrics")
        samples, types = parse_exposition(body.decode())
        compared = 0
        for name, value in stats.items():
            if not (name.startswith("cache_") or name.startswith("upstream_")):
                continue
            metric = f"smcache_{name}" + ("_total" if types.get(f"smcache_{name}_total") else "")
            self.assertIn((metric, ""), samples, name)
            self.assertEqual(samples[(metric, "")], value, name)
            compared += 1
        self.assertGreater(compared, 20)
        # The upstream calls by operation and their latency histogram agree with STATS.
        get = '{operation="GetSecretValue"}'
        self.assertEqual(samples[("smcache_upstream_calls_total",
                                  '{operation="GetSecretValue",outcome="ok"}')], stats["upstream_get_ok"])
        self.assertEqual(samples[("smcache_upstream_latency_seconds_count", get)],
                         stats["upstream_get_ok"] + stats["upstream_get_error"])
        self.assertGreater(samples[("smcache_upstream_latency_seconds_sum", get)], 0)


@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(), "needs moto, boto3 and the binaries")
class AwsSlowUpstreamTest(unittest.TestCase):
    """Through a fault proxy: timeouts are 504, a client that leaves while its GET waits is
    no harm, and the agent stops cleanly with a GET still waiting (run under ASan too)."""

    def test_timeout_leaving_client_and_stop_while_waiting(self):
        sm = MOTO.client()
        names = [f"http/slow{i}-{os.getpid()}" for i in range(3)]
        for n in names:
            sm.create_secret(Name=n, SecretString="v-" + n)
        port = aws_moto.free_port()
        with aws_moto.FaultProxy(MOTO.port) as proxy:
            agent = aws_moto.AwsAgent(endpoint=proxy.url, env={"AWS_TOKEN": TOKEN},
                                      aws_extra="request_timeout = 1\nupstream_timeout = 2\nmax_retries = 1\n",
                                      cache_extra=f"negative_ttl = 0\n[http]\nlisten = 127.0.0.1:{port}\n")
            try:
                agent.start()
                url = f"http://localhost:{port}/secretsmanager/get?secretId="
                # 1. The upstream never answers: 504 TimeoutError, as the AWS agent.
                proxy.inject("GetSecretValue", *[aws_moto.Fault("hang")] * 4)
                status, _, body = curl("-H", f"{HDR}: {TOKEN}", url + names[0])
                self.assertEqual(status, 504, body)
                self.assertEqual(json.loads(body), {"__type": "TimeoutError", "message": "Timeout"})
                proxy.clear()
                # 2. A client that leaves before the (slow) answer: the agent carries on.
                proxy.inject("GetSecretValue", aws_moto.Fault("delay", seconds=1.0))
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(f"GET /v1/{names[1]} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                          f"{HDR}: {TOKEN}\r\n\r\n".encode())
                time.sleep(0.2)
                s.close()
                time.sleep(1.5)
                status, _, body = curl("-H", f"{HDR}: {TOKEN}", url + names[1])
                self.assertEqual((status, json.loads(body)["SecretString"]), (200, "v-" + names[1]))
                # 3. Stop with a GET waiting for the upstream: a clean exit (no leak, no crash).
                proxy.inject("GetSecretValue", aws_moto.Fault("delay", seconds=5.0))
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(f"GET /v1/{names[2]} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                          f"{HDR}: {TOKEN}\r\n\r\n".encode())
                s2 = socket.create_connection(("127.0.0.1", port), timeout=5)
                s2.sendall(f"GET /v1/{names[2]} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                           f"{HDR}: {TOKEN}\r\n\r\n".encode())
                time.sleep(0.3)
                s2.close()          # one waiting GET whose client left, one whose client is there
                time.sleep(0.2)
                agent.stop(check=True)
                s.close()
            finally:
                agent.close()


# ---- the AWS agent's checks, ours, access rules, metrics (file backend) ---------------------

SECRETS = [h.secret("app/db", [h.version("v1", ["AWSCURRENT"], string="value-1")]),
           h.secret("root/only", [h.version("r1", ["AWSCURRENT"], string="root-value")])]


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class FileDoorTest(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        cls.port = aws_moto.free_port()
        cls.mport = aws_moto.free_port()
        cls.tmp = tempfile.mkdtemp(prefix="smc-http-")
        cls.hsock = os.path.join(cls.tmp, "http.sock")
        cls.audit = os.path.join(cls.tmp, "audit.log")
        os.chmod(cls.tmp, 0o755)
        extra = (f"max_connections = 4\nallowed_hosts = smcache.internal\n"
                 f"metrics_listen = 127.0.0.1:{cls.mport}\n"
                 f"[access]\nallow = user:root *\nallow = user:nobody app/*\n"
                 f"[audit]\nlevel = all\nfile = {cls.audit}\n")
        agent = h.Agent(SECRETS, config_extra=http_section(cls.port, cls.hsock, extra),
                        env={"AWS_TOKEN": TOKEN})
        os.chmod(agent.dir, 0o755)
        return agent

    def url(self, path):
        return f"http://localhost:{self.port}{path}"

    def test_the_aws_agents_error_cases(self):
        good = ["-H", f"{HDR}: {TOKEN}"]
        cases = [
            ("unknown parameter", good, "/secretsmanager/get?secretId=app/db&foo=1", 400,
             b"unknown parameter: foo"),
            ("secretId in the path form", good, "/v1/app/db?secretId=x", 400, b"unknown parameter"),
            ("missing secretId", good, "/secretsmanager/get", 400, b"missing parameter secretId"),
            ("empty secretId", good, "/secretsmanager/get?secretId=", 400, b"missing parameter"),
            ("missing id in path", good, "/v1/", 400, b"missing secret ID"),
            ("bad refreshNow", good, "/secretsmanager/get?secretId=app/db&refreshNow=yes", 400,
             b"invalid refreshNow value"),
            ("NUL in a value", good, "/secretsmanager/get?secretId=app/db%00x", 400, b""),
            ("no token", [], "/secretsmanager/get?secretId=app/db", 403, b"Bad Token"),
            ("wrong token", ["-H", f"{HDR}: {TOKEN}x"], "/secretsmanager/get?secretId=app/db", 403,
             b"Bad Token"),
            ("token prefix", ["-H", f"{HDR}: {TOKEN[:-1]}"], "/v1/app/db", 403, b"Bad Token"),
            ("X-Forwarded-For", good + ["-H", "X-Forwarded-For: 10.0.0.1"], "/v1/app/db", 400,
             b"Forwarded"),
            ("POST", good + ["-X", "POST"], "/secretsmanager/get?secretId=app/db", 405, b"Not allowed"),
            ("POST without token", ["-X", "POST"], "/secretsmanager/get?secretId=app/db", 403, b""),
            ("unknown path", good, "/nope", 404, b"Not found"),
            ("ping needs no token", [], "/ping", 200, b"healthy"),
        ]
        for what, args, path, status, text in cases:
            with self.subTest(what):
                got, head, body = curl(*args, self.url(path))
                self.assertEqual(got, status, body)
                self.assertIn(text, body)
                self.assertNotIn("access-control", head.lower())
        # Ordinary values still come back after all of that.
        got, _, body = curl(*good, self.url("/v1/app/db"))
        self.assertEqual((got, json.loads(body)["SecretString"]), (200, "value-1"))

    def test_host_header_dns_rebinding(self):
        good = ["-H", f"{HDR}: {TOKEN}"]
        for host, status in [(f"localhost:{self.port}", 200), (f"127.0.0.1:{self.port}", 200),
                             (f"[::1]:{self.port}", 200), (f"smcache.internal:{self.port}", 200),
                             (f"evil.example:{self.port}", 400), ("localhost", 400),
                             (f"localhost:{self.port + 1}", 400), (f"localhost.evil:{self.port}", 400)]:
            with self.subTest(host=host):
                got, _, _ = curl(*good, "-H", f"Host: {host}", self.url("/v1/app/db"))
                self.assertEqual(got, status)

    def test_no_cors_headers(self):
        got, head, _ = curl("-H", f"{HDR}: {TOKEN}", "-H", "Origin: http://evil.example",
                            self.url("/v1/app/db"))
        self.assertEqual(got, 200)
        self.assertNotIn("access-control", head.lower())
        got, head, _ = curl("-X", "OPTIONS", "-H", "Origin: http://evil.example",
                            "-H", "Access-Control-Request-Method: GET", self.url("/v1/app/db"))
        self.assertEqual(got, 403)
        self.assertNotIn("access-control", head.lower())

    def test_other_uid_denied_by_rules_with_the_right_token(self):
        good = ["-H", f"{HDR}: {TOKEN}"]
        if os.geteuid() != 0:
            self.skipTest("needs root to run curl as nobody")
        # nobody may read app/*, not root/only; root may read both.
        got, _, body = curl(*good, self.url("/v1/root/only"), user="nobody")
        self.assertEqual(got, 403, body)
        self.assertEqual(json.loads(body)["__type"], "AccessDeniedException")
        got, _, body = curl(*good, self.url("/v1/app/db"), user="nobody")
        self.assertEqual(got, 200, body)
        got, _, body = curl(*good, self.url("/v1/root/only"))
        self.assertEqual((got, json.loads(body)["SecretString"]), (200, "root-value"))
        # The same over the HTTP Unix socket (SO_PEERCRED).
        got, _, body = curl("--unix-socket", self.hsock, *good, "http://localhost/v1/root/only",
                            user="nobody")
        self.assertEqual(got, 403, body)
        # Over IPv6 too.
        if HAVE_IPV6:
            got, _, _ = curl(*good, f"http://[::1]:{self.port}/v1/root/only", user="nobody")
            self.assertEqual(got, 403)
        # /metrics is STATS: nobody is named by a rule, so allowed; the audit says who asked.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(self.audit) as f:
                log = f.read()
            if 'decision=denied status=ACCESS_DENIED uid=65534' in log:
                break
            time.sleep(0.05)
        denied = [l for l in log.splitlines() if "uid=65534" in l and "decision=denied" in l]
        self.assertTrue(denied, log[-2000:])
        self.assertIn('id="root/only"', denied[0])
        self.assertIn("door=http", denied[0])

    def test_too_many_connections_is_429(self):
        conns = []
        try:
            for _ in range(4):      # max_connections = 4, each has sent a request
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("GET", "/v1/app/db", headers={HDR: TOKEN})
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
                conns.append(c)
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request("GET", "/v1/app/db", headers={HDR: TOKEN})
            r = c.getresponse()
            self.assertEqual(r.status, 429)
            self.assertIn(b"Connection limit exceeded", r.read())
            # The connections already served keep being served.
            conns[0].request("GET", "/v1/app/db", headers={HDR: TOKEN})
            r = conns[0].getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            c.close()
        finally:
            for c in conns:
                c.close()
        # Room again once they are gone.
        deadline = time.monotonic() + 5
        while True:
            got, _, _ = curl("-H", f"{HDR}: {TOKEN}", self.url("/v1/app/db"))
            if got == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, 200)

    def test_metrics_strict_and_monotonic(self):
        good = ["-H", f"{HDR}: {TOKEN}"]
        got, _, _ = curl(self.url("/metrics"))
        self.assertEqual(got, 403)          # the token, on the API listener
        got, head, body1 = curl(*good, self.url("/metrics"))
        self.assertEqual(got, 200)
        self.assertIn("text/plain; version=0.0.4", head)
        s1, types = parse_exposition(body1.decode())
        for _ in range(3):
            curl(*good, self.url("/v1/app/db"))
        curl(*good, self.url("/v1/missing"))
        # The scrape listener: no token needed.
        got, _, body2 = curl(f"http://127.0.0.1:{self.mport}/metrics")
        self.assertEqual(got, 200)
        s2, _ = parse_exposition(body2.decode())
        for (name, labels), v in s1.items():
            fam = name
            if types.get(fam) == "counter":
                self.assertGreaterEqual(s2[(name, labels)], v, name)
        self.assertGreater(s2[("smcache_http_requests_total", "")], s1[("smcache_http_requests_total", "")])
        self.assertGreater(s2[("smcache_cache_hits_total", "")], s1[("smcache_cache_hits_total", "")])
        self.assertGreater(s2[("smcache_http_replies_total", '{code="200"}')],
                           s1[("smcache_http_replies_total", '{code="200"}')])
        # Never a secret id in the exposition.
        self.assertNotIn(b"app/db", body2)
        # The scrape listener serves nothing else.
        got, _, _ = curl("-H", f"{HDR}: {TOKEN}", f"http://127.0.0.1:{self.mport}/v1/app/db")
        self.assertEqual(got, 404)

    def test_ready(self):
        got, _, body = curl("-H", f"{HDR}: {TOKEN}", self.url("/ready"))
        self.assertEqual((got, body), (200, b"ready"))
        got, _, body = curl(f"http://127.0.0.1:{self.mport}/ready")
        self.assertEqual((got, body), (200, b"ready"))


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class TokenFileTest(unittest.TestCase):
    def test_file_token_with_newline_and_permissions(self):
        port = aws_moto.free_port()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "token")
            with open(path, "w") as f:
                f.write(TOKEN + "\n")      # as the AWS agent's install script writes it
            os.chmod(path, 0o600)
            with h.Agent(SECRETS, config_extra=f"[http]\nlisten = 127.0.0.1:{port}\n",
                         env={"AWS_TOKEN": f"file://{path}"}) as a:
                got, _, _ = curl("-H", f"{HDR}: {TOKEN}", f"http://localhost:{port}/v1/app/db")
                self.assertEqual(got, 200)
                a.stop()
            # A token file others may write is refused at start-up.
            os.chmod(path, 0o666)
            a = h.Agent(SECRETS, config_extra=f"[http]\nlisten = 127.0.0.1:{port}\n",
                        env={"AWS_TOKEN": f"file://{path}"})
            try:
                with self.assertRaises(AssertionError) as ctx:
                    a.start(timeout=5)
                self.assertIn("writable by no one else", str(ctx.exception))
            finally:
                a.close()

    def test_no_token_no_start_and_non_loopback_refused(self):
        port = aws_moto.free_port()
        env = {k: "" for k in ()}
        a = h.Agent(SECRETS, config_extra=f"[http]\nlisten = 127.0.0.1:{port}\n"
                    "ssrf_env_variables = SMC_TEST_NO_SUCH_VARIABLE\n", env=env)
        try:
            with self.assertRaises(AssertionError) as ctx:
                a.start(timeout=5)
            self.assertIn("needs an SSRF token", str(ctx.exception))
        finally:
            a.close()
        a = h.Agent(SECRETS, config_extra=f"[http]\nlisten = 0.0.0.0:{port}\n",
                    env={"AWS_TOKEN": TOKEN})
        try:
            with self.assertRaises(AssertionError) as ctx:
                a.start(timeout=5)
            self.assertIn("not a loopback address", str(ctx.exception))
        finally:
            a.close()


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class PerUidLimitsTest(unittest.TestCase):
    def test_http_requests_spend_the_uids_budget(self):
        # One budget per uid, shared by both doors: HTTP requests spend it like socket ones.
        port = aws_moto.free_port()
        extra = (f"[http]\nlisten = 127.0.0.1:{port}\n[limits]\nrequests_per_second_per_uid = 1\n"
                 "burst_per_uid = 3\nrefreshes_per_minute_per_uid = 1\n")
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}) as agent:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            statuses = []
            for _ in range(6):
                c.request("GET", "/v1/app/db", headers={HDR: TOKEN})
                r = c.getresponse()
                statuses.append((r.status, json.loads(r.read()).get("__type")))
            c.close()
            self.assertEqual(statuses[0][0], 200)
            self.assertIn((429, "ThrottlingException"), statuses)
            # The forced-refresh budget too (a fresh second, one refresh a minute).
            time.sleep(3.1)
            got = []
            for _ in range(2):
                st, _, body = curl("-H", f"{HDR}: {TOKEN}",
                                   f"http://localhost:{port}/v1/app/db?refreshNow=true")
                got.append(st)
            self.assertEqual(got, [200, 429])


def closed_within(sock, seconds):
    """True when the peer closes sock within seconds (reading whatever it sends)."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            pass
        except OSError:
            return True
    return False


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class SocketBoundsTest(unittest.TestCase):
    """Sockets that never finish a first request are the door's to bound, not evhttp's."""

    def test_idle_slowloris_and_waiting_cap(self):
        port = aws_moto.free_port()
        extra = f"[http]\nlisten = 127.0.0.1:{port}\nidle_timeout = 2\nmax_connections = 5\n"
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}) as agent:
            # Over max_connections sockets waiting for a first request: the oldest are shut
            # (a client speaks at once; silent sockets that were there first hold places).
            socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(9)]
            time.sleep(0.5)         # well within idle_timeout: only the cap applies
            readable, _, _ = select.select(socks, [], [], 0.3)
            shut = [s in readable and s.recv(16) == b"" for s in socks]
            self.assertEqual(shut, [True] * 4 + [False] * 5)
            for s in socks:
                s.close()
            # A slowloris (a byte every 0.3 s resets evhttp's read timeout) is shut after
            # idle_timeout from its accept; so is a silent socket.
            loris = socket.create_connection(("127.0.0.1", port), timeout=5)
            idle = socket.create_connection(("127.0.0.1", port), timeout=5)
            loris.sendall(b"GET /v1/app/db HTTP/1.1\r\n")
            t0 = time.monotonic()
            closed = False
            while time.monotonic() - t0 < 6 and not closed:
                try:
                    loris.sendall(b"X")
                except OSError:
                    closed = True
                    break
                closed = closed_within(loris, 0.3)
            took = time.monotonic() - t0
            self.assertTrue(closed, "the slowloris socket stayed open")
            self.assertGreater(took, 1.5)
            self.assertLess(took, 4.5)
            self.assertTrue(closed_within(idle, 1.0))
            loris.close()
            idle.close()
            # A socket that finished a request is evhttp's: kept alive between requests.
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(2):
                c.request("GET", "/v1/app/db", headers={HDR: TOKEN})
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
                time.sleep(1.5)     # idle between requests, under idle_timeout each
            c.request("GET", "/v1/app/db", headers={HDR: TOKEN})
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            time.sleep(0.5)
            _, _, body = curl("-H", f"{HDR}: {TOKEN}", f"http://localhost:{port}/metrics")
            samples, _ = parse_exposition(body.decode())
            # 4 over the cap and the slowloris (the silent one may go by evhttp's read timeout).
            self.assertGreaterEqual(samples[("smcache_http_sockets_shut_total", "")], 5)
            self.assertLessEqual(samples[("smcache_http_sockets_open", "")], 2)


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class IdleAndSlowlorisTest(unittest.TestCase):
    """1,000 idle HTTP connections and slowloris headers: Unix-socket clients do not notice."""

    def unix_latencies(self, agent, n=300):
        out = []
        with agent.connect() as s:
            for i in range(n):
                t = time.monotonic()
                s.sendall(h.get_frame("app/db", request_id=i + 1))
                r = h.read_reply(s)
                out.append(time.monotonic() - t)
                self.assertEqual(r.status, h.ST_OK)
        out.sort()
        return out[len(out) // 2], out[int(len(out) * 0.99)]

    def test_idle_and_slowloris(self):
        port = aws_moto.free_port()
        extra = (f"[http]\nlisten = 127.0.0.1:{port}\nidle_timeout = 60\nmax_header_size = 8K\n"
                 "max_connections = 2000\n")
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}) as agent:
            base_p50, base_p99 = self.unix_latencies(agent)
            idle, loris = [], []
            try:
                for _ in range(1000):
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    idle.append(s)
                for _ in range(50):
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s.sendall(b"GET /v1/app/db HTTP/1.1\r\nHost: localhost\r\n")
                    loris.append(s)
                for round_ in range(3):      # trickle one header byte at a time
                    for s in loris:
                        s.sendall(b"X")
                p50, p99 = self.unix_latencies(agent)
                # The Unix socket keeps serving; latency stays in the same range.
                self.assertLess(p50, max(base_p50 * 5, 0.005), (base_p50, p50))
                self.assertLess(p99, max(base_p99 * 5, 0.050), (base_p99, p99))
                # An HTTP client still gets through beside them.
                got, _, _ = curl("-H", f"{HDR}: {TOKEN}", f"http://localhost:{port}/v1/app/db")
                self.assertEqual(got, 200)
                # A header section past max_header_size is refused, not buffered.
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    s.sendall(b"GET /v1/app/db HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 +
                              b"\r\n\r\n")
                    reply = s.recv(200)
                except ConnectionResetError:
                    reply = b"reset"
                s.close()
                self.assertTrue(reply == b"" or reply == b"reset" or reply.startswith(b"HTTP/1.1 4"), reply)
            finally:
                for s in idle + loris:
                    s.close()
            sys.stderr.write(f"\n  unix GET p50/p99: alone {base_p50 * 1e6:.0f}/{base_p99 * 1e6:.0f} us,"
                             f" beside 1000 idle + 50 slowloris HTTP {p50 * 1e6:.0f}/{p99 * 1e6:.0f} us\n")


if __name__ == "__main__":
    unittest.main()
