"""The aws backend end to end against moto_server: build/smcached with `[backend] type = aws`,
values read with build/smcache and compared with what boto3 reads from moto.

Covers: string/binary/large values, stages and version ids, name/ARN/partial ARN,
not-found and deleted secrets, DescribeSecret, a real rotation (not moto's RotateSecret),
the request shape and signature (checked with botocore), retries of 5xx/throttling/429/
timeouts/dropped connections through a fault proxy, giving up, an upstream that is down or
hangs, malformed bodies, BatchGetSecretValue (through tests/tools/aws_upstream), moto's
IAM-auth mode (right key, wrong secret key, unknown key, a policy that denies) and the
endpoint/region from the environment.
"""
import base64
import datetime
import itertools
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

TOOL = os.path.join(h.BUILD, "tests", "aws_upstream")
RUN = aws_moto.have_moto() and h.have_binaries()
SKIP_WHY = "needs boto3, moto_server, build/smcached and build/smcache"

EXIT_NOT_FOUND, EXIT_DENIED, EXIT_UNAVAILABLE = 3, 4, 5

BIN = bytes(range(256)) * 3 + b"\x00\xff\x00"
BIG = ("0123456789abcdef" * 4096)          # 65536 bytes, the AWS maximum
UNICODE = "pässwörd ✓ \"quoted\" \\ back\nslash"

MOTO = None          # the module's default-mode moto_server
_names = itertools.count()


setUpModule, tearDownModule = aws_moto.module_hooks(__name__, RUN)


def unique(prefix):
    return f"{prefix}-{next(_names)}"


def boto_value(sm, secret_id, **kw):
    r = sm.get_secret_value(SecretId=secret_id, **kw)
    return r["SecretBinary"] if "SecretBinary" in r else r["SecretString"].encode()


def run_tool(*args, env=None, timeout=30):
    """tests/tools/aws_upstream: returns (exit status, answers, stats)."""
    r = subprocess.run([TOOL, *args], capture_output=True, env=env, timeout=timeout)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    stats = next((l["stats"] for l in lines if "stats" in l), None)
    answers = [l for l in lines if "stats" not in l]
    for marker in h.SANITIZER_MARKERS:
        assert marker not in r.stderr.decode(errors="replace"), r.stderr.decode(errors="replace")
    return r.returncode, answers, stats


def tool_env(endpoint, key=aws_moto.FAKE_KEY, secret=aws_moto.FAKE_SECRET):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint, AWS_REGION=aws_moto.REGION,
               AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    return env


@unittest.skipUnless(RUN, SKIP_WHY)
class AwsValues(h.SharedAgentTest):
    """Reads through the agent equal boto3's reads, for every way of naming a version."""

    @classmethod
    def make_agent(cls):
        sm = cls.sm = MOTO.client()
        sm.create_secret(Name="val/string", SecretString=UNICODE)
        sm.create_secret(Name="val/binary", SecretBinary=BIN)
        sm.create_secret(Name="val/big", SecretString=BIG)
        # Versions: v1 (no label left), v2 AWSPREVIOUS + blue, v3 AWSCURRENT, v4 AWSPENDING.
        cls.arn = sm.create_secret(Name="val/versions", SecretString="one")["ARN"]
        sm.put_secret_value(SecretId="val/versions", SecretString="two")
        sm.put_secret_value(SecretId="val/versions", SecretBinary=b"three\x00")
        v2 = [v["VersionId"] for v in sm.list_secret_version_ids(SecretId="val/versions")["Versions"]
              if "AWSPREVIOUS" in v.get("VersionStages", [])][0]
        sm.update_secret_version_stage(SecretId="val/versions", VersionStage="blue", MoveToVersionId=v2)
        sm.put_secret_value(SecretId="val/versions", SecretString="four", VersionStages=["AWSPENDING"])
        sm.create_secret(Name="val/deleted", SecretString="gone")
        sm.delete_secret(SecretId="val/deleted", RecoveryWindowInDays=7)
        sm.create_secret(Name="val/rotated", SecretString="before")
        cls.rotated_version = aws_moto.rotate(sm, "val/rotated", "after")
        return aws_moto.AwsAgent(endpoint=MOTO.url)

    def get_ok(self, secret_id, *args):
        rc, out, err = self.agent.get(secret_id, *args)
        self.assertEqual(rc, 0, f"{secret_id} {args}: {err}")
        return out

    def test_string_binary_and_big_values(self):
        for name in ("val/string", "val/binary", "val/big"):
            self.assertEqual(self.get_ok(name), boto_value(self.sm, name), name)
        self.assertEqual(self.get_ok("val/binary"), BIN)
        self.assertEqual(len(self.get_ok("val/big")), 65536)

    def test_json_output_matches_boto3(self):
        rc, out, err = self.agent.get("val/binary", "--json")
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        want = self.sm.get_secret_value(SecretId="val/binary")
        self.assertEqual(base64.b64decode(got["SecretBinary"]), want["SecretBinary"])
        for k in ("ARN", "Name", "VersionId"):
            self.assertEqual(got[k], want[k])
        self.assertEqual(got["VersionStages"], want["VersionStages"])

    def test_every_stage_and_version(self):
        for stage in ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING", "blue"):
            self.assertEqual(self.get_ok("val/versions", "--version-stage", stage),
                             boto_value(self.sm, "val/versions", VersionStage=stage), stage)
        self.assertEqual(self.get_ok("val/versions"), b"three\x00")
        versions = self.sm.list_secret_version_ids(SecretId="val/versions",
                                                   IncludeDeprecated=True)["Versions"]
        self.assertEqual(len(versions), 4)
        for v in versions:
            vid = v["VersionId"]
            self.assertEqual(self.get_ok("val/versions", "--version-id", vid),
                             boto_value(self.sm, "val/versions", VersionId=vid))
            for stage in v.get("VersionStages", []):
                self.assertEqual(self.get_ok("val/versions", "--version-id", vid, "--version-stage",
                                             stage), boto_value(self.sm, "val/versions", VersionId=vid))

    def test_name_arn_and_partial_arn(self):
        want = boto_value(self.sm, "val/versions")
        for sid in ("val/versions", self.arn, self.arn[:-7]):
            self.assertEqual(self.get_ok(sid), want, sid)

    def test_not_found(self):
        current = [v["VersionId"] for v in self.sm.list_secret_version_ids(SecretId="val/versions")["Versions"]
                   if "AWSCURRENT" in v.get("VersionStages", [])][0]
        cases = [("val/missing",), ("val/versions", "--version-stage", "NOPE"),
                 ("val/versions", "--version-id", "00000000-0000-0000-0000-000000000000"),
                 ("val/versions", "--version-id", current, "--version-stage", "AWSPREVIOUS"),
                 (self.arn[:-7] + "-zzzzzz",)]
        for case in cases:
            rc, out, err = self.agent.get(*case)
            self.assertEqual(rc, EXIT_NOT_FOUND, f"{case}: {err}")
            self.assertEqual(out, b"")
            self.assertTrue(err.strip(), case)

    def test_deleted_secret(self):
        rc, out, err = self.agent.get("val/deleted")
        self.assertEqual(rc, EXIT_NOT_FOUND, err)
        self.assertIn("deletion", err)
        # DescribeSecret still works and shows when it goes.
        r = self.agent.cli("describe", "val/deleted", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("DeletedDate", json.loads(r.stdout))

    def test_describe_matches_boto3(self):
        r = self.agent.cli("describe", "val/versions", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        want = self.sm.describe_secret(SecretId="val/versions")
        self.assertEqual(got["ARN"], want["ARN"])
        self.assertEqual(got["Name"], "val/versions")
        self.assertEqual({k: sorted(v) for k, v in got["VersionIdsToStages"].items()},
                         {k: sorted(v) for k, v in want["VersionIdsToStages"].items()})
        self.assertNotIn("DeletedDate", got)
        rc = self.agent.cli("describe", "val/missing").returncode
        self.assertEqual(rc, EXIT_NOT_FOUND)

    def test_rotation_reads_the_new_current_version(self):
        # moto returns the old version unless AWSCURRENT is asked for explicitly: the agent must.
        rc, out, err = self.agent.get("val/rotated", "--json")
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual(got["SecretString"], "after")
        self.assertEqual(got["VersionId"], self.rotated_version)
        self.assertIn("AWSCURRENT", got["VersionStages"])
        self.assertEqual(self.get_ok("val/rotated", "--version-stage", "AWSPREVIOUS"), b"before")

    def test_counters_and_no_values_in_log(self):
        before = self.stats()
        self.get_ok("val/string", "--version-stage", "AWSCURRENT")
        name = unique("val/fresh")
        self.sm.create_secret(Name=name, SecretString="fresh-secret-do-not-log")
        self.get_ok(name)
        self.agent.get(unique("val/nothing"))
        after = self.stats()
        self.assertGreaterEqual(after["upstream_get_ok"], before["upstream_get_ok"] + 1)
        self.assertGreaterEqual(after["upstream_get_error"], before["upstream_get_error"] + 1)
        log = self.agent.read_log()
        self.assertIn("GetSecretValue", log)   # debug logging was on
        for value in ("fresh-secret-do-not-log", "pässwörd", "0123456789abcdef0123"):
            self.assertNotIn(value, log)

    def stats(self):
        r = self.agent.cli("stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {k: int(v) for k, v in (l.split() for l in r.stdout.decode().splitlines())}


@unittest.skipUnless(RUN, SKIP_WHY)
class AwsFaults(h.SharedAgentTest):
    """Through a counting, fault-injecting proxy: what is sent, and what is retried."""

    @classmethod
    def make_agent(cls):
        cls.sm = MOTO.client()
        cls.proxy = aws_moto.FaultProxy(MOTO.port).start()
        # Generous timeouts: a loaded machine must not turn into extra retries here.
        return aws_moto.AwsAgent(endpoint=cls.proxy.url, token="FwoGZXIvYXdzEXAMPLE/TOKEN+=",
                                 aws_extra="request_timeout = 5\nupstream_timeout = 8\n"
                                           "max_retries = 3\n")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.proxy.stop()

    def setUp(self):
        self.proxy.clear()

    def own_agent(self):
        """An agent of its own for a test that makes the upstream fail: the cache's circuit
        breaker opens after a few failures in a row and would fail the tests that follow."""
        return aws_moto.AwsAgent(endpoint=self.proxy.url,
                                 aws_extra="request_timeout = 1\nupstream_timeout = 4\n"
                                           "max_retries = 3\n")

    def secret(self, value="v"):
        name = unique("flt/s")
        self.sm.create_secret(Name=name, SecretString=value)
        self.proxy.clear()
        return name

    def test_request_shape_and_signature(self):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        name = self.secret("shape")
        rc, out, err = self.agent.get(name)
        self.assertEqual((rc, out), (0, b"shape"), err)
        headers, body = self.proxy.last("GetSecretValue")
        hl = {k.lower(): v for k, v in headers.items()}
        # AWSCURRENT is always explicit.
        self.assertEqual(body, {"SecretId": name, "VersionStage": "AWSCURRENT"})
        self.assertEqual(hl["content-type"], "application/x-amz-json-1.1")
        self.assertEqual(hl["x-amz-target"], "secretsmanager.GetSecretValue")
        self.assertEqual(hl["host"], f"127.0.0.1:{self.proxy.port}")
        self.assertEqual(hl["x-amz-security-token"], "FwoGZXIvYXdzEXAMPLE/TOKEN+=")
        self.assertNotIn("x-amz-content-sha256", hl)
        auth = hl["authorization"]
        self.assertTrue(auth.startswith(f"AWS4-HMAC-SHA256 Credential={aws_moto.FAKE_KEY}/"), auth)
        self.assertIn("/us-east-1/secretsmanager/aws4_request", auth)
        self.assertIn("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,",
                      auth)
        signed_at = datetime.datetime.strptime(hl["x-amz-date"], "%Y%m%dT%H%M%SZ")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(abs((now - signed_at).total_seconds()), 300)
        self.assertIn(f"Credential={aws_moto.FAKE_KEY}/{hl['x-amz-date'][:8]}/", auth)
        # botocore computes the same signature over what was received.
        raw = json.dumps(body, separators=(",", ":")).encode()
        req = AWSRequest(method="POST", url=self.proxy.url + "/", data=raw, headers={
            "Content-Type": hl["content-type"], "X-Amz-Date": hl["x-amz-date"],
            "X-Amz-Target": hl["x-amz-target"], "X-Amz-Security-Token": hl["x-amz-security-token"]})
        req.context["timestamp"] = hl["x-amz-date"]
        signer = SigV4Auth(Credentials(aws_moto.FAKE_KEY, aws_moto.FAKE_SECRET,
                                       "FwoGZXIvYXdzEXAMPLE/TOKEN+="), "secretsmanager", "us-east-1")
        creq = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, creq), req)
        self.assertTrue(auth.endswith("Signature=" + sig), (auth, creq))

    def test_stage_and_version_sent_as_asked(self):
        name = self.secret("x")
        vid = self.sm.describe_secret(SecretId=name)["VersionIdsToStages"].popitem()[0]
        self.assertEqual(self.agent.get(name, "--version-id", vid)[0], 0)
        self.assertEqual(self.proxy.last("GetSecretValue")[1], {"SecretId": name, "VersionId": vid})
        self.assertEqual(self.agent.get(name, "--version-stage", "AWSPENDING")[0], EXIT_NOT_FOUND)
        self.assertEqual(self.proxy.last("GetSecretValue")[1],
                         {"SecretId": name, "VersionStage": "AWSPENDING"})

    def retried_then_ok(self, *faults, agent=None):
        name = self.secret("eventually")
        self.proxy.inject("GetSecretValue", *faults)
        rc, out, err = (agent or self.agent).get(name)
        self.assertEqual((rc, out), (0, b"eventually"), err)
        self.assertEqual(self.proxy.count("GetSecretValue"), len(faults) + 1)

    def test_server_errors_are_retried(self):
        self.retried_then_ok(aws_moto.Fault.server_error(),
                             aws_moto.Fault.error(503, "ServiceUnavailable"))

    def test_throttling_is_retried(self):
        self.retried_then_ok(aws_moto.Fault.throttle(), aws_moto.Fault.throttle(),
                             aws_moto.Fault("status", status=429, body=""))

    def test_timeout_and_dropped_connection_are_retried(self):
        with self.own_agent() as agent:
            start = time.monotonic()
            self.retried_then_ok(aws_moto.Fault("delay", seconds=1.6), aws_moto.Fault("drop"),
                                 agent=agent)
            self.assertGreaterEqual(time.monotonic() - start, 0.9)   # request_timeout = 1

    def test_gives_up_after_max_retries(self):
        name = self.secret()
        self.proxy.inject("GetSecretValue", *[aws_moto.Fault.server_error()] * 10)
        with self.own_agent() as agent:
            rc, out, err = agent.get(name)
        self.assertEqual(rc, EXIT_UNAVAILABLE, err)
        self.assertIn("HTTP 500", err)
        self.assertIn("after 4 attempts", err)
        self.assertEqual(self.proxy.count("GetSecretValue"), 4)

    def test_client_errors_are_not_retried(self):
        rc, _, err = self.agent.get(unique("flt/missing"))
        self.assertEqual(rc, EXIT_NOT_FOUND, err)
        self.assertEqual(self.proxy.count("GetSecretValue"), 1)
        name = self.secret()
        self.proxy.inject("GetSecretValue", aws_moto.Fault.error(400, "InvalidParameterException", "no"))
        rc, _, err = self.agent.get(name)
        self.assertEqual(rc, 1, err)           # BAD_REQUEST: "other errors"
        self.assertIn("InvalidParameterException", err)
        self.assertEqual(self.proxy.count("GetSecretValue"), 1)
        self.proxy.inject("GetSecretValue", aws_moto.Fault.error(400, "AccessDeniedException",
                                                                 "User: x is not authorized"))
        rc, _, err = self.agent.get(name)
        self.assertEqual(rc, EXIT_DENIED, err)
        self.assertIn("AccessDeniedException", err)
        self.assertEqual(self.proxy.count("GetSecretValue"), 2)

    def test_malformed_bodies_are_rejected(self):
        bodies = [b"{not json", b"[]", b'{"ARN": "a"}', b"<html>oops</html>",
                  b'{"ARN":"a","Name":"n","VersionId":"v","SecretBinary":"%%%"}',
                  b'{"ARN":"a","Name":"n","VersionId":"v","SecretString":"x\\u0000y"}']
        with self.own_agent() as agent:
            for body in bodies:
                name = self.secret()
                self.proxy.inject("GetSecretValue", aws_moto.Fault("status", status=200, body=body))
                rc, out, err = agent.get(name)
                self.assertEqual(rc, EXIT_UNAVAILABLE, (body, err))
                self.assertIn("malformed response from Secrets Manager", err)
                self.assertEqual(out, b"")
                self.assertEqual(self.proxy.count("GetSecretValue"), 1)
                # A good answer in between keeps the cache's circuit breaker closed.
                self.assertEqual(agent.get(self.secret("ok"))[:2], (0, b"ok"))
            self.assertTrue(agent.proc.poll() is None)

    def test_hanging_upstream_hits_the_deadline(self):
        name = self.secret()
        self.proxy.inject("GetSecretValue", *[aws_moto.Fault("hang")] * 10)
        with self.own_agent() as agent:
            start = time.monotonic()
            rc, _, err = agent.get(name)
            elapsed = time.monotonic() - start
        self.assertEqual(rc, EXIT_UNAVAILABLE, err)
        self.assertLess(elapsed, 4 + 1.5)      # upstream_timeout = 4
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertGreaterEqual(self.proxy.count("GetSecretValue"), 2)

    def test_batch_one_call_for_many_ids(self):
        names = [self.secret(f"b{i}") for i in range(3)]
        arn = self.sm.describe_secret(SecretId=names[1])["ARN"]
        gone = self.secret()
        self.sm.delete_secret(SecretId=gone, RecoveryWindowInDays=7)
        ids = [names[0], arn, arn[:-7], names[2], "flt/none", gone]
        self.proxy.clear()
        rc, answers, stats = run_tool("batch", *ids, env=tool_env(self.proxy.url))
        self.assertEqual(rc, 3)
        self.assertEqual(self.proxy.count("BatchGetSecretValue"), 1)
        self.assertEqual(self.proxy.count("GetSecretValue"), 0)
        self.assertEqual(self.proxy.last("BatchGetSecretValue")[1], {"SecretIdList": ids})
        by_index = {a["index"]: a for a in answers if "index" in a}
        self.assertEqual(sorted(by_index), list(range(len(ids))))
        self.assertEqual(answers[-1], {"done": True})
        for i, want in ((0, b"b0"), (1, b"b1"), (2, b"b1"), (3, b"b2")):
            self.assertEqual(by_index[i]["status"], "OK", by_index[i])
            self.assertEqual(base64.b64decode(by_index[i]["value_b64"]), want)
        self.assertEqual(by_index[4]["status"], "NOT_FOUND")
        self.assertEqual(by_index[5]["status"], "NOT_FOUND")
        self.assertIn("deletion", by_index[5]["message"])
        self.assertEqual((stats["batch_items_ok"], stats["batch_items_error"], stats["batch_ok"]), (4, 2, 1))

    def test_batch_falls_back_when_the_whole_call_fails(self):
        # moto fails the whole batch with 404 when one secret's current version has no value
        # (RotateSecret without a Lambda leaves such a version): ask each id alone instead.
        ok = self.secret("fine")
        empty = unique("flt/empty")
        self.sm.create_secret(Name=empty, SecretString="x")
        self.sm.rotate_secret(SecretId=empty, RotationRules={"AutomaticallyAfterDays": 1})
        self.proxy.clear()
        rc, answers, stats = run_tool("batch", ok, empty, env=tool_env(self.proxy.url))
        self.assertEqual(rc, 3)
        by_index = {a["index"]: a for a in answers if "index" in a}
        self.assertEqual(base64.b64decode(by_index[0]["value_b64"]), b"fine")
        self.assertEqual(by_index[1]["status"], "NOT_FOUND")
        self.assertEqual(self.proxy.count("BatchGetSecretValue"), 1)
        self.assertEqual(self.proxy.count("GetSecretValue"), 2)
        self.assertEqual(stats["batch_fallbacks"], 1)

    def test_batch_retries_and_whole_failure(self):
        name = self.secret("r")
        self.proxy.inject("BatchGetSecretValue", aws_moto.Fault.throttle())
        rc, answers, stats = run_tool("batch", name, env=tool_env(self.proxy.url))
        self.assertEqual(rc, 0, answers)
        self.assertEqual(self.proxy.count("BatchGetSecretValue"), 2)
        self.assertEqual((stats["retries"], stats["throttled"]), (1, 1))
        self.proxy.inject("BatchGetSecretValue", aws_moto.Fault.error(400, "AccessDeniedException", "no"))
        rc, answers, stats = run_tool("batch", name, "other", env=tool_env(self.proxy.url))
        self.assertEqual([a.get("status") for a in answers[:2]], ["ACCESS_DENIED"] * 2)
        self.assertEqual(answers[2], {"done": True})
        self.assertEqual(stats["batch_error"], 1)

    def test_free_inside_a_callback(self):
        names = [self.secret(f"f{i}") for i in range(3)]
        rc, answers, stats = run_tool("--free-in-callback", "batch", *names, env=tool_env(self.proxy.url))
        self.assertEqual(len(answers), 1)       # nothing ran after the backend was freed
        self.assertIsNone(stats)
        rc, answers, _ = run_tool("--free-in-callback", "get", names[0], env=tool_env(self.proxy.url))
        self.assertEqual((rc, len(answers)), (0, 1))

    def test_direct_get_and_describe(self):
        name = self.secret("direct")
        rc, answers, stats = run_tool("get", name, "", env=tool_env(self.proxy.url))
        self.assertEqual(rc, 0)
        self.assertEqual(base64.b64decode(answers[0]["value_b64"]), b"direct")
        self.assertEqual(answers[0]["stages"], ["AWSCURRENT"])
        self.assertGreater(answers[0]["created_ms"], 1.6e12)
        self.assertEqual((stats["get_ok"], stats["http_requests"]), (1, 1))
        # Without the cache in front, the backend itself sends AWSCURRENT explicitly...
        self.assertEqual(self.proxy.last("GetSecretValue")[1],
                         {"SecretId": name, "VersionStage": "AWSCURRENT"})
        # ...which is what makes a rotated secret read right on moto.
        rotated = unique("flt/rotated")
        self.sm.create_secret(Name=rotated, SecretString="before")
        aws_moto.rotate(self.sm, rotated, "after")
        rc, answers, _ = run_tool("get", rotated, env=tool_env(self.proxy.url))
        self.assertEqual(base64.b64decode(answers[0]["value_b64"]), b"after")
        rc, answers, stats = run_tool("describe", name, env=tool_env(self.proxy.url))
        self.assertEqual(rc, 0)
        self.assertEqual(list(answers[0]["versions"].values()), [["AWSCURRENT"]])
        self.assertEqual(stats["describe_ok"], 1)


@unittest.skipUnless(RUN, SKIP_WHY)
class AwsDown(unittest.TestCase):
    def test_moto_stopped(self):
        with aws_moto.Moto() as moto:
            sm = moto.client()
            sm.create_secret(Name="down/a", SecretString="a")
            sm.create_secret(Name="down/b", SecretString="b")
            with aws_moto.AwsAgent(endpoint=moto.url, aws_extra="upstream_timeout = 3\n") as agent:
                self.assertEqual(agent.get("down/a")[:2], (0, b"a"))
                moto.stop()
                start = time.monotonic()
                rc, out, err = agent.get("down/b")
                self.assertEqual(rc, EXIT_UNAVAILABLE, err)
                self.assertLess(time.monotonic() - start, 3 + 1.5)
                self.assertIn("cannot reach Secrets Manager", err)

    def test_bad_configuration_fails_at_start(self):
        agent = aws_moto.AwsAgent(endpoint=None, region=None)
        try:
            with self.assertRaises(AssertionError) as cm:
                agent.start(timeout=10)
            self.assertIn("region", str(cm.exception))
        finally:
            agent.close()


@unittest.skipUnless(RUN, SKIP_WHY)
class AwsAuth(unittest.TestCase):
    """moto's IAM-auth mode: signatures are checked and policies evaluated."""

    @classmethod
    def setUpClass(cls):
        cls.moto = aws_moto.Moto(auth_free_actions=1000).start()
        try:
            cls.key = aws_moto.setup_iam_user(cls.moto, "agent", ["secretsmanager:*"])
            cls.describer = aws_moto.setup_iam_user(cls.moto, "describer",
                                                    ["secretsmanager:DescribeSecret"])
            sm = cls.moto.client()
            sm.create_secret(Name="auth/db", SecretString="signed-and-checked")
            sm.create_secret(Name="auth/bin", SecretBinary=BIN)
            cls.moto.reset_auth(0)
        except Exception:
            cls.moto.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def test_checks_are_on(self):
        import botocore.exceptions
        with self.assertRaises(botocore.exceptions.ClientError):
            self.moto.client(key="AKIAUNKNOWNKEY000000").get_secret_value(SecretId="auth/db")

    def test_right_key_reads(self):
        sm = self.moto.client(key=self.key[0], secret=self.key[1])
        with aws_moto.AwsAgent(endpoint=self.moto.url, key=self.key[0], secret=self.key[1]) as agent:
            for name in ("auth/db", "auth/bin"):
                rc, out, err = agent.get(name)
                self.assertEqual(rc, 0, err)
                self.assertEqual(out, boto_value(sm, name))
            self.assertEqual(agent.cli("describe", "auth/db").returncode, 0)

    def test_wrong_secret_key_is_clear(self):
        with aws_moto.AwsAgent(endpoint=self.moto.url, key=self.key[0], secret="wrong" + self.key[1],
                               aws_extra="max_retries = 3\n") as agent:
            start = time.monotonic()
            rc, out, err = agent.get("auth/db")
            self.assertEqual(rc, EXIT_DENIED, err)
            self.assertEqual(out, b"")
            self.assertIn("SignatureDoesNotMatch", err)
            self.assertIn("credentials", err)
            self.assertLess(time.monotonic() - start, 2.0)      # not retried
            log = agent.read_log()
        self.assertIn("SignatureDoesNotMatch", log)

    def test_unknown_key(self):
        with aws_moto.AwsAgent(endpoint=self.moto.url, key="AKIAUNKNOWNKEY000000",
                               secret=self.key[1]) as agent:
            rc, _, err = agent.get("auth/db")
            self.assertEqual(rc, EXIT_DENIED, err)
            self.assertIn("InvalidClientTokenId", err)

    def test_policy_that_denies(self):
        with aws_moto.AwsAgent(endpoint=self.moto.url, key=self.describer[0],
                               secret=self.describer[1]) as agent:
            rc, _, err = agent.get("auth/db")
            self.assertEqual(rc, EXIT_DENIED, err)
            self.assertIn("AccessDenied", err)
            self.assertIn("secretsmanager:GetSecretValue", err)
            self.assertEqual(agent.cli("describe", "auth/db").returncode, 0)


@unittest.skipUnless(RUN, SKIP_WHY)
class AwsEnvironment(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        MOTO.client().create_secret(Name="env/db", SecretString="from-env")

    def test_endpoint_and_region_from_environment(self):
        with aws_moto.AwsAgent(endpoint=None, region=None,
                               env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": MOTO.url,
                                    "AWS_REGION": "us-east-1"}) as agent:
            self.assertEqual(agent.get("env/db")[:2], (0, b"from-env"))
            self.assertIn(MOTO.url, agent.read_log())

    def test_signing_region_selects_the_region(self):
        # moto routes by the credential scope: the secret lives in us-east-1 only.
        with aws_moto.AwsAgent(endpoint=MOTO.url, region="eu-west-1") as agent:
            rc, _, err = agent.get("env/db")
            self.assertEqual(rc, EXIT_NOT_FOUND, err)


if __name__ == "__main__":
    unittest.main()
