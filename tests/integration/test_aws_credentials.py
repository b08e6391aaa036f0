"""The agent's AWS credential chain, driven through build/tests/aws_creds_probe.

Sources: environment, shared files (+ AWS_PROFILE), web identity against moto's STS
(unsigned AssumeRoleWithWebIdentity, as AWS wants it) and against a local STS stand-in
for errors and XML entities, IMDSv2 against moto, ECS/EKS container credentials against
a local server (Authorization from a token and from a token file re-read on refresh),
background refresh of short-lived credentials, and broken set-ups that must fail
clearly (half-set keys, unreadable token files, unreachable IMDS, refused hosts).
The probe never prints secrets: it compares them with SMC_PROBE_EXPECT_SECRET/_TOKEN.
"""
import datetime
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smc_harness  # noqa: E402
from aws_moto import Moto, free_port  # noqa: E402

PROBE = os.path.join(smc_harness.BUILD, "tests", "aws_creds_probe")
HAVE_MOTO = shutil.which("moto_server") is not None
ROLE_ARN = "arn:aws:iam::123456789012:role/smcache-test"


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalAws:
    """A threaded HTTP server standing in for the ECS credential endpoint (GET /creds)
    and for STS (POST /): behaviour set through attributes, requests recorded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = {"tok"}          # accepted Authorization values (None: no check)
        self.lifetime = 3600
        self.fail_after = None         # answer 500 once this many credentials were served
        self.sts_reply = None          # (status, body) for POST /
        self.auth_seen = []
        self.served = 0
        self.posts = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, body, ctype="application/json"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                auth = self.headers.get("Authorization")
                with outer.lock:
                    outer.auth_seen.append(auth)
                    if outer.tokens is not None and auth not in outer.tokens:
                        return self.reply(401, '{"message": "bad token"}')
                    if outer.fail_after is not None and outer.served >= outer.fail_after:
                        return self.reply(500, '{"message": "injected"}')
                    outer.served += 1
                    n = outer.served
                    exp = int(time.time()) + outer.lifetime
                self.reply(200, json.dumps({
                    "AccessKeyId": f"ECSKEY{n}", "SecretAccessKey": f"ecs/secret+{n}",
                    "Token": f"ecs-token-{n}", "Expiration": iso(exp)}))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.posts.append((dict(self.headers), body.decode()))
                status, text = outer.sts_reply
                self.reply(status, text, "text/xml")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def parse(out):
    """key=value lines (first wins), plus the raw lines."""
    kv = {}
    for line in out.splitlines():
        if "=" in line and " " not in line.split("=", 1)[0]:
            k, v = line.split("=", 1)
            kv.setdefault(k, v)
    return kv


class CredentialsTest(unittest.TestCase):
    moto = None

    @classmethod
    def setUpClass(cls):
        if not os.access(PROBE, os.X_OK):
            raise AssertionError(f"{PROBE} is missing: make {PROBE}")
        if HAVE_MOTO:
            cls.moto = Moto().start()

    @classmethod
    def tearDownClass(cls):
        if cls.moto is not None:
            cls.moto.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smc-creds-")
        self.local = LocalAws()

    def tearDown(self):
        self.local.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def probe(self, env, *args, timeout=20):
        """Runs the probe with a scrubbed environment plus env. Returns (rc, kv, out, err)."""
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp,
                "AWS_REGION": "us-east-1"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                base[k] = os.environ[k]
        base.update(env)
        proc = subprocess.run([PROBE, *args], env=base, capture_output=True, text=True,
                              timeout=timeout)
        for marker in smc_harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, proc.stderr, proc.stderr)
        return proc.returncode, parse(proc.stdout), proc.stdout, proc.stderr

    def assert_no_secret_output(self, out, err, *secrets):
        for s in secrets:
            self.assertNotIn(s, out)
            self.assertNotIn(s, err)

    # ---- environment and shared files ------------------------------------------------

    def test_environment(self):
        rc, kv, out, err = self.probe({
            "AWS_ACCESS_KEY_ID": "AKIAENVEXAMPLE", "AWS_SECRET_ACCESS_KEY": "env/secret+key",
            "AWS_SESSION_TOKEN": "env-session-token",
            "SMC_PROBE_EXPECT_SECRET": "env/secret+key",
            "SMC_PROBE_EXPECT_TOKEN": "env-session-token"})
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "environment")
        self.assertEqual(kv["access_key_id"], "AKIAENVEXAMPLE")
        self.assertEqual(kv["session_token"], "yes")
        self.assertEqual(kv["expiration"], "never")
        self.assertEqual(kv["secret_match"], "yes")
        self.assertEqual(kv["token_match"], "yes")
        # The probe's comparison is real: a wrong expectation says no.
        rc, kv, out, err = self.probe({
            "AWS_ACCESS_KEY_ID": "AKIAENVEXAMPLE", "AWS_SECRET_ACCESS_KEY": "env/secret+key",
            "SMC_PROBE_EXPECT_SECRET": "other"})
        self.assertEqual(kv["secret_match"], "no")
        self.assertEqual(kv["session_token"], "no")
        self.assert_no_secret_output(out, err, "env/secret+key")

    def test_environment_half_set(self):
        rc, kv, out, _ = self.probe({"AWS_ACCESS_KEY_ID": "AKIAENVEXAMPLE"})
        self.assertEqual(rc, 2, out)
        self.assertIn("AWS_SECRET_ACCESS_KEY is not", kv["error"])
        rc, kv, out, _ = self.probe({"AWS_SECRET_ACCESS_KEY": "x"})
        self.assertEqual(rc, 2, out)
        self.assertIn("AWS_ACCESS_KEY_ID is not", kv["error"])

    def test_shared_files(self):
        long_token = "IQoJb3JpZ2luX2VjE" + "x" * 1400
        creds = self.write("credentials",
                           "[default]\naws_access_key_id = AKIADEFAULT\n"
                           "aws_secret_access_key = default/secret\n\n"
                           "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key=dev/secret\n"
                           f"aws_session_token = {long_token}\n"
                           "[half]\naws_access_key_id = AKIAHALF\n")
        config = self.write("config",
                            "[default]\nregion = eu-west-1\n"
                            "[profile cfgonly]\naws_access_key_id = AKIACFG\n"
                            "aws_secret_access_key = cfg/secret\n"
                            "[profile assume]\nrole_arn = arn:aws:iam::1:role/x\n"
                            "source_profile = default\n")
        files = {"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config,
                 "AWS_EC2_METADATA_DISABLED": "true"}

        rc, kv, out, err = self.probe(dict(files, SMC_PROBE_EXPECT_SECRET="default/secret"))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "shared-file")
        self.assertEqual(kv["access_key_id"], "AKIADEFAULT")
        self.assertEqual(kv["secret_match"], "yes")

        rc, kv, out, err = self.probe(dict(files, AWS_PROFILE="dev",
                                           SMC_PROBE_EXPECT_SECRET="dev/secret",
                                           SMC_PROBE_EXPECT_TOKEN=long_token))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["access_key_id"], "AKIADEV")
        self.assertEqual(kv["token_match"], "yes")      # a 1400-byte line, whole
        self.assertEqual(kv["secret_match"], "yes")

        rc, kv, out, err = self.probe(dict(files, AWS_PROFILE="cfgonly"))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["access_key_id"], "AKIACFG")

        # The environment comes first.
        rc, kv, out, err = self.probe(dict(files, AWS_PROFILE="dev", AWS_ACCESS_KEY_ID="AKIAENV",
                                           AWS_SECRET_ACCESS_KEY="s"))
        self.assertEqual(kv["source"], "environment")

        rc, kv, out, _ = self.probe(dict(files, AWS_PROFILE="half"))
        self.assertEqual(rc, 2, out)
        self.assertIn("only one of aws_access_key_id and aws_secret_access_key", kv["error"])
        rc, kv, out, _ = self.probe(dict(files, AWS_PROFILE="nosuch"))
        self.assertEqual(rc, 2, out)
        self.assertIn("profile 'nosuch'", kv["error"])
        rc, kv, out, _ = self.probe(dict(files, AWS_PROFILE="assume"))
        self.assertEqual(rc, 2, out)
        self.assertIn("role_arn", kv["error"])

        bad = self.write("bad-credentials", "[default]\nthis line is broken\n")
        rc, kv, out, _ = self.probe(dict(files, AWS_SHARED_CREDENTIALS_FILE=bad))
        self.assertEqual(rc, 2, out)
        self.assertIn("bad-credentials:2:", kv["error"])

        rc, kv, out, _ = self.probe({"AWS_EC2_METADATA_DISABLED": "true"})
        self.assertEqual(rc, 2, out)
        self.assertIn("no AWS credentials", kv["error"])

    # ---- web identity ------------------------------------------------------------------

    @unittest.skipUnless(HAVE_MOTO, "moto_server is not installed")
    def test_web_identity_moto(self):
        token = self.write("web-token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln==\n")
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": ROLE_ARN,
               "AWS_ROLE_SESSION_NAME": "smcache-it", "AWS_ENDPOINT_URL_STS": self.moto.url}
        rc, kv, out, err = self.probe(env)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "web-identity")
        self.assertTrue(kv["access_key_id"].startswith("ASIA"), kv)
        self.assertEqual(kv["session_token"], "yes")
        self.assertTrue(3500 <= int(kv["expires_in"]) <= 3600, kv)
        # AWS_ENDPOINT_URL is the fallback for STS too.
        env.pop("AWS_ENDPOINT_URL_STS")
        rc, kv, out, err = self.probe(dict(env, AWS_ENDPOINT_URL=self.moto.url))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "web-identity")

    def test_web_identity_request_and_errors(self):
        token = self.write("web-token", "header.payload+/=.sig\n")
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": ROLE_ARN,
               "AWS_ENDPOINT_URL_STS": self.local.url}
        exp = iso(time.time() + 900)
        self.local.sts_reply = (200,
                                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                                "<Credentials><AccessKeyId>ASIALOCAL</AccessKeyId>"
                                "<SecretAccessKey>a&amp;b&lt;c&gt;d&quot;e&apos;f&#43;</SecretAccessKey>"
                                "<SessionToken>tok&#x2F;en</SessionToken>"
                                f"<Expiration>{exp}</Expiration></Credentials>"
                                "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")
        rc, kv, out, err = self.probe(dict(env, SMC_PROBE_EXPECT_SECRET="a&b<c>d\"e'f+",
                                           SMC_PROBE_EXPECT_TOKEN="tok/en"))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["access_key_id"], "ASIALOCAL")
        self.assertEqual(kv["secret_match"], "yes")
        self.assertEqual(kv["token_match"], "yes")
        self.assertTrue(880 <= int(kv["expires_in"]) <= 900, kv)
        # What was sent: an unsigned form POST with the token percent-encoded.
        headers, body = self.local.posts[-1]
        self.assertNotIn("Authorization", headers)
        self.assertTrue(headers["Content-Type"].startswith("application/x-www-form-urlencoded"))
        fields = dict(p.split("=", 1) for p in body.split("&"))
        self.assertEqual(fields["Action"], "AssumeRoleWithWebIdentity")
        self.assertEqual(fields["Version"], "2011-06-15")
        self.assertEqual(fields["RoleArn"], "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fsmcache-test")
        self.assertEqual(fields["WebIdentityToken"], "header.payload%2B%2F%3D.sig")
        self.assertTrue(fields["RoleSessionName"].startswith("smcached-"))
        self.assertNotIn("header.payload", out + err)

        self.local.sts_reply = (400,
                                "<ErrorResponse><Error><Type>Sender</Type>"
                                "<Code>InvalidIdentityToken</Code>"
                                "<Message>Token &amp; audience rejected</Message></Error></ErrorResponse>")
        rc, kv, out, err = self.probe(env)
        self.assertEqual(rc, 1, out)
        self.assertIn("HTTP 400 InvalidIdentityToken: Token & audience rejected", kv["error"])

        self.local.sts_reply = (200, "<Credentials><AccessKeyId>A</AccessKeyId></Credentials>")
        rc, kv, out, err = self.probe(env)
        self.assertEqual(rc, 1, out)
        self.assertIn("missing or malformed", kv["error"])

    def test_web_identity_broken_setup(self):
        rc, kv, out, _ = self.probe({"AWS_WEB_IDENTITY_TOKEN_FILE": os.path.join(self.tmp, "none"),
                                     "AWS_ROLE_ARN": ROLE_ARN})
        self.assertEqual(rc, 2, out)
        self.assertIn("cannot read token file", kv["error"])
        self.assertIn(os.path.join(self.tmp, "none"), kv["error"])
        empty = self.write("empty-token", "\n")
        rc, kv, out, _ = self.probe({"AWS_WEB_IDENTITY_TOKEN_FILE": empty, "AWS_ROLE_ARN": ROLE_ARN})
        self.assertEqual(rc, 2, out)
        self.assertIn("is empty", kv["error"])
        token = self.write("web-token", "t\n")
        rc, kv, out, _ = self.probe({"AWS_WEB_IDENTITY_TOKEN_FILE": token})
        self.assertEqual(rc, 2, out)
        self.assertIn("AWS_ROLE_ARN is not", kv["error"])

    # ---- instance metadata -------------------------------------------------------------

    @unittest.skipUnless(HAVE_MOTO, "moto_server is not installed")
    def test_imds_moto(self):
        rc, kv, out, err = self.probe({"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.moto.url + "/",
                                       "SMC_PROBE_EXPECT_SECRET": "test-secret-key",
                                       "SMC_PROBE_EXPECT_TOKEN": "test-session-token"})
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["provider"], "imds")
        self.assertEqual(kv["source"], "imds")
        self.assertEqual(kv["access_key_id"], "test-key")
        self.assertEqual(kv["secret_match"], "yes")
        self.assertEqual(kv["token_match"], "yes")
        self.assertGreater(int(kv["expires_in"]), 3600)

    def test_imds_unreachable(self):
        start = time.monotonic()
        rc, kv, out, _ = self.probe({
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
        self.assertEqual(rc, 1, out)
        self.assertIn("instance metadata", kv["error"])
        self.assertLess(time.monotonic() - start, 5)
        rc, kv, out, _ = self.probe({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "ftp://x"})
        self.assertEqual(rc, 2, out)
        self.assertIn("AWS_EC2_METADATA_SERVICE_ENDPOINT", kv["error"])

    # ---- container credentials ---------------------------------------------------------

    def ecs_env(self, **extra):
        return dict({"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.local.url + "/creds"}, **extra)

    def test_ecs_token(self):
        rc, kv, out, err = self.probe(self.ecs_env(AWS_CONTAINER_AUTHORIZATION_TOKEN="tok",
                                                   SMC_PROBE_EXPECT_SECRET="ecs/secret+1",
                                                   SMC_PROBE_EXPECT_TOKEN="ecs-token-1"))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "ecs")
        self.assertEqual(kv["access_key_id"], "ECSKEY1")
        self.assertEqual(kv["secret_match"], "yes")
        self.assertEqual(kv["token_match"], "yes")
        self.assertEqual(self.local.auth_seen, ["tok"])

        # A refused token is a clear error.
        rc, kv, out, _ = self.probe(self.ecs_env(AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong"))
        self.assertEqual(rc, 1, out)
        self.assertIn("HTTP 401", kv["error"])
        self.assertIn("authorization token refused", kv["error"])

    def test_ecs_token_file(self):
        path = self.write("ecs-token", "file-token\n")
        self.local.tokens = {"file-token"}
        # The file wins over the variable.
        rc, kv, out, err = self.probe(self.ecs_env(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=path,
                                                   AWS_CONTAINER_AUTHORIZATION_TOKEN="tok"))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["source"], "ecs")
        self.assertEqual(self.local.auth_seen, ["file-token"])

        rc, kv, out, _ = self.probe(self.ecs_env(
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=os.path.join(self.tmp, "missing")))
        self.assertEqual(rc, 2, out)
        self.assertIn("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", kv["error"])
        self.assertIn("cannot read token file", kv["error"])

    def test_ecs_refused_hosts(self):
        for url in ("http://169.254.169.254/creds", "http://example.com/creds",
                    "http://127.0.0.1.example.com/x", "file:///etc/passwd"):
            rc, kv, out, _ = self.probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url})
            self.assertEqual(rc, 2, f"{url}: {out}")
            self.assertIn("only http(s) URLs to a loopback address", kv["error"])
        rc, kv, out, _ = self.probe({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "creds"})
        self.assertEqual(rc, 2, out)
        self.assertIn("must start with '/'", kv["error"])

    def test_ecs_refresh_before_expiry(self):
        """6-second credentials, watched for 8 s: refreshed in the background (token file
        re-read each time), never missing, never expired."""
        path = self.write("ecs-token", "tok-1\n")
        self.local.tokens = {"tok-1", "tok-2"}
        self.local.lifetime = 6
        env = self.ecs_env(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=path)
        proc = subprocess.Popen([PROBE, "--watch", "8", "--interval", "200"],
                                env=dict({"PATH": os.environ["PATH"], "HOME": self.tmp,
                                          "AWS_REGION": "us-east-1"}, **env,
                                         **{k: os.environ[k] for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")
                                            if k in os.environ}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        self.write("ecs-token", "tok-2\n")      # rotated under the agent
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, out + err)
        for marker in smc_harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, err)
        summary = [line for line in out.splitlines() if line.startswith("summary ")]
        self.assertEqual(len(summary), 1, out)
        fields = dict(p.split("=") for p in summary[0].split()[1:])
        self.assertGreaterEqual(int(fields["refreshes"]), 2, out)
        self.assertEqual(fields["misses"], "0", out)
        self.assertEqual(fields["get_errors"], "0", out)
        self.assertEqual(fields["expired_seen"], "0", out)
        self.assertIn("tok-2", self.local.auth_seen)      # re-read on refresh
        self.assertGreaterEqual(self.local.served, 3)
        # Refreshed while the old ones were still good: each refresh line shows a new key
        # well before the previous expiry.
        self.assertIn("access_key_id=ECSKEY2", out)

    def test_ecs_refresh_failure(self):
        """The endpoint fails after the first answer: the old credentials keep being
        served while usable, retried in the background, then none (never expired ones)."""
        self.local.lifetime = 5
        self.local.fail_after = 1
        rc, kv, out, err = self.probe(self.ecs_env(AWS_CONTAINER_AUTHORIZATION_TOKEN="tok"),
                                      "--watch", "6", "--interval", "200")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(kv["access_key_id"], "ECSKEY1")
        summary = [line for line in out.splitlines() if line.startswith("summary ")][0]
        fields = dict(p.split("=") for p in summary.split()[1:])
        self.assertEqual(fields["refreshes"], "0", out)
        self.assertEqual(fields["expired_seen"], "0", out)
        self.assertGreater(int(fields["misses"]), 0, out)       # after the usable margin
        self.assertGreater(int(fields["get_errors"]), 0, out)
        self.assertIn("keeping the current credentials", err)
        self.assertIn("HTTP 500", err)
        # The first miss comes only once the credentials were close to expiring.
        first_miss = next(int(line.split("t=")[1]) for line in out.splitlines()
                          if line.startswith("miss "))
        self.assertGreater(first_miss, 2500, out)
        self.assertGreater(len(self.local.auth_seen), 2)          # retried


if __name__ == "__main__":
    unittest.main()
