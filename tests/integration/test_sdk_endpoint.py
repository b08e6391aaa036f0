"""The Secrets Manager API on localhost ([endpoint]): unmodified AWS SDKs and the aws CLI.

- boto3 with endpoint_url, with AWS_ENDPOINT_URL_SECRETS_MANAGER and with a shared-config
  profile's endpoint_url: GetSecretValue (name, full ARN, partial ARN, VersionId,
  VersionStage, binary, a custom stage), DescribeSecret, ListSecretVersionIds and
  BatchGetSecretValue with a missing id all equal boto3's answers from moto_server
  (ResponseMetadata aside); errors raised as boto3's own exception classes.
- The aws CLI prints the same documents through the agent as against moto.
- The AWS SDK for JavaScript v3, installed with npm into a temporary folder (skipped when
  npm or the registry is unavailable), reads through the agent.
- A walkthrough (create, get, update, get, get AWSPREVIOUS, describe, delete) through the
  agent with forward = yes gives the same answers as against moto, the new value at once.
- Writes refused by default, naming the real endpoint; refused without an allow_write rule.
- Auth: a request without Authorization, with a garbled one, with a stale X-Amz-Date; OPTIONS,
  a foreign Host, a browser's Content-Type; peer mode with a uid the rules deny (setpriv to
  nobody); keys mode: good key, wrong secret key, unknown key, key denied by the rules.
- The loop guard: an agent whose upstream is its own [endpoint] does not start.
"""
import base64
import datetime
import http.client
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402

REGION = aws_moto.REGION
CALLER_KEY = "AKIDCALLER0000000001"	# the SDK's own credentials (never the agent's)
CALLER_SECRET = "caller-secret-key"


def strip(doc):
    doc = dict(doc)
    doc.pop("ResponseMetadata", None)
    return doc


def agent_client(port, key=CALLER_KEY, secret=CALLER_SECRET):
    import boto3
    from botocore.config import Config
    return boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{port}",
                        region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def make_agent(moto, port, endpoint_extra="", access="", env=None, aws_endpoint=True):
    cache = f"negative_ttl = 0\n[endpoint]\nlisten = 127.0.0.1:{port}\n{endpoint_extra}"
    if access:
        cache += f"[access]\n{access}"
    return aws_moto.AwsAgent(endpoint=moto.url if aws_endpoint else None, cache_extra=cache,
                             env=env)


def error_code(fn, *args, **kw):
    from botocore.exceptions import ClientError
    try:
        fn(*args, **kw)
    except ClientError as e:
        return type(e).__name__, e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError("no error raised")


def client_env(port=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": CALLER_KEY, "AWS_SECRET_ACCESS_KEY": CALLER_SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    if port is not None:
        env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = f"http://127.0.0.1:{port}"
    return env


@unittest.skipUnless(aws_moto.have_moto(), "boto3 and moto_server are needed")
class SdkEndpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = aws_moto.Moto().start()
        cls.sm = cls.moto.client()
        sm = cls.sm
        sm.create_secret(Name="app/db", SecretString="v1")
        cls.v2 = sm.put_secret_value(SecretId="app/db", SecretString="v2 \u00e9\u4e2d\"\\\n")["VersionId"]
        sm.create_secret(Name="bin/key", SecretBinary=bytes(range(256)))
        sm.create_secret(Name="app/staged", SecretString="current")
        sm.put_secret_value(SecretId="app/staged", SecretString="pending",
                            VersionStages=["AWSPENDING"])
        cls.arn = sm.describe_secret(SecretId="app/db")["ARN"]
        cls.port = aws_moto.free_port()
        cls.agent = make_agent(cls.moto, cls.port, f"listen = [::1]:{cls.port}\nforward = yes\n",
                               "allow_write = user:root *\n").start()
        cls.client = agent_client(cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.agent.stop()
        cls.moto.stop()

    @staticmethod
    def moto_clock_aside(doc):
        """moto answers ListSecretVersionIds with its clock at the call as each version's
        dates (so two calls a second apart differ); the agent relays them."""
        for v in doc.get("Versions", []):
            v.pop("LastAccessedDate", None)
            v.pop("CreatedDate", None)
        return doc

    def both(self, op, **kw):
        mine = self.moto_clock_aside(strip(getattr(self.client, op)(**kw)))
        theirs = self.moto_clock_aside(strip(getattr(self.sm, op)(**kw)))
        self.assertEqual(mine, theirs, f"{op} {kw}")
        return mine

    # ---- reads equal to the service's ----

    def test_get_secret_value_equal(self):
        partial = self.arn[:-7]
        for sid in ("app/db", self.arn, partial):
            for extra in ({}, {"VersionStage": "AWSCURRENT"}, {"VersionStage": "AWSPREVIOUS"},
                          {"VersionId": self.v2}, {"VersionId": self.v2, "VersionStage": "AWSCURRENT"}):
                self.both("get_secret_value", SecretId=sid, **extra)
        r = self.both("get_secret_value", SecretId="bin/key")
        self.assertEqual(r["SecretBinary"], bytes(range(256)))
        r = self.both("get_secret_value", SecretId="app/staged", VersionStage="AWSPENDING")
        self.assertEqual(r["SecretString"], "pending")
        self.assertEqual(self.both("get_secret_value", SecretId="app/db")["SecretString"],
                         "v2 \u00e9\u4e2d\"\\\n")

    def test_ipv6_listener(self):
        import boto3
        c = boto3.client("secretsmanager", endpoint_url=f"http://[::1]:{self.port}",
                         region_name=REGION, aws_access_key_id=CALLER_KEY,
                         aws_secret_access_key=CALLER_SECRET)
        self.assertEqual(strip(c.get_secret_value(SecretId="bin/key")),
                         strip(self.sm.get_secret_value(SecretId="bin/key")))

    def test_describe_and_versions_equal(self):
        for sid in ("app/db", self.arn, "bin/key", "app/staged"):
            self.both("describe_secret", SecretId=sid)
            self.both("list_secret_version_ids", SecretId=sid)
            self.both("list_secret_version_ids", SecretId=sid, IncludeDeprecated=True)

    def test_batch_equal(self):
        r = self.both("batch_get_secret_value", SecretIdList=["app/db", "bin/key", "no/such",
                                                              self.arn])
        self.assertEqual(len(r["SecretValues"]), 3)
        self.assertEqual([e["SecretId"] for e in r["Errors"]], ["no/such"])
        self.both("batch_get_secret_value", SecretIdList=["app/db"])
        r = strip(self.client.batch_get_secret_value(
            Filters=[{"Key": "name", "Values": ["app/db"]}]))
        self.assertEqual(r["SecretValues"][0]["Name"], "app/db")

    def test_errors_are_boto3_classes(self):
        for kw in ({"SecretId": "no/such"}, {"SecretId": "app/db", "VersionStage": "NOPE"}):
            mine = error_code(self.client.get_secret_value, **kw)
            theirs = error_code(self.sm.get_secret_value, **kw)
            self.assertEqual(mine, theirs)
            self.assertEqual(mine[0], "ResourceNotFoundException")
        with self.assertRaises(self.client.exceptions.ResourceNotFoundException):
            self.client.describe_secret(SecretId="no/such")
        with self.assertRaises(self.client.exceptions.InvalidParameterException):
            self.client.batch_get_secret_value(SecretIdList=["a"],
                                               Filters=[{"Key": "name", "Values": ["a"]}])

    # ---- unmodified programs: the environment variable, a profile, the CLI, JavaScript ----

    def test_environment_variable_and_profile(self):
        script = ("import boto3,json;c=boto3.client('secretsmanager');"
                  "r=c.get_secret_value(SecretId='app/db');print(json.dumps(r['SecretString']));"
                  "print(c.meta.endpoint_url)")
        r = subprocess.run([sys.executable, "-c", script], env=client_env(self.port),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:2],
                         [json.dumps("v2 \u00e9\u4e2d\"\\\n"), f"http://127.0.0.1:{self.port}"])
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            f.write(f"[profile smc]\nregion = {REGION}\nservices = smc\n"
                    f"[services smc]\nsecrets_manager =\n  endpoint_url = http://127.0.0.1:{self.port}\n")
        try:
            env = client_env()
            env.update({"AWS_CONFIG_FILE": f.name, "AWS_PROFILE": "smc"})
            r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                               text=True, timeout=60)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(f"http://127.0.0.1:{self.port}\n"), r.stdout)

    @staticmethod
    def dates_as_numbers(doc):
        """The CLI prints the service's timestamps; compare them as numbers."""
        if isinstance(doc, dict):
            return {k: (round(float(v), 3) if k.endswith("Date") and v is not None and
                        not isinstance(v, str) else SdkEndpoint.dates_as_numbers(v))
                    for k, v in doc.items()}
        if isinstance(doc, list):
            return [SdkEndpoint.dates_as_numbers(v) for v in doc]
        return doc

    def test_aws_cli_prints_the_same(self):
        if shutil.which("aws") is None:
            self.skipTest("the aws CLI is not installed")
        commands = [["get-secret-value", "--secret-id", "app/db"],
                    ["get-secret-value", "--secret-id", self.arn, "--version-stage", "AWSPREVIOUS"],
                    ["get-secret-value", "--secret-id", "bin/key"],
                    ["describe-secret", "--secret-id", "app/db"],
                    ["list-secret-version-ids", "--secret-id", "app/db"],
                    ["batch-get-secret-value", "--secret-id-list", "app/db", "bin/key", "no/such"]]
        for cmd in commands:
            out = []
            for url in (f"http://127.0.0.1:{self.port}", self.moto.url):
                r = subprocess.run(["aws", "secretsmanager", *cmd, "--endpoint-url", url,
                                    "--output", "json"], env=client_env(), capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                out.append(self.moto_clock_aside(self.dates_as_numbers(json.loads(r.stdout))))
            self.assertEqual(out[0], out[1], cmd)

    def test_javascript_sdk_v3(self):
        if shutil.which("npm") is None or shutil.which("node") is None:
            self.skipTest("npm/node are not installed")
        folder = tempfile.mkdtemp(prefix="smc-js-")
        try:
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                                "@aws-sdk/client-secrets-manager"], cwd=folder,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                self.skipTest(f"npm install failed (registry unavailable?): {r.stderr[-300:]}")
            with open(os.path.join(folder, "read.js"), "w") as f:
                f.write("""
const sm = require("@aws-sdk/client-secrets-manager");
const c = new sm.SecretsManagerClient({});
(async () => {
  const out = {};
  const g = await c.send(new sm.GetSecretValueCommand({ SecretId: "app/db" }));
  out.get = { ARN: g.ARN, Name: g.Name, VersionId: g.VersionId, SecretString: g.SecretString,
              VersionStages: g.VersionStages, CreatedDate: g.CreatedDate.getTime() };
  const b = await c.send(new sm.GetSecretValueCommand({ SecretId: "bin/key" }));
  out.binary = Buffer.from(b.SecretBinary).toString("base64");
  const d = await c.send(new sm.DescribeSecretCommand({ SecretId: "app/db" }));
  out.describe = d.VersionIdsToStages;
  const bb = await c.send(new sm.BatchGetSecretValueCommand({ SecretIdList: ["app/db", "no/such"] }));
  out.batch = [bb.SecretValues.map(v => v.Name), bb.Errors.map(e => e.ErrorCode)];
  try { await c.send(new sm.GetSecretValueCommand({ SecretId: "no/such" })); out.missing = "none"; }
  catch (e) { out.missing = e.name; }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
""")
            r = subprocess.run(["node", "read.js"], cwd=folder, env=client_env(self.port),
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        want = self.sm.get_secret_value(SecretId="app/db")
        self.assertEqual(out["get"], {
            "ARN": want["ARN"], "Name": "app/db", "VersionId": want["VersionId"],
            "SecretString": want["SecretString"], "VersionStages": want["VersionStages"],
            "CreatedDate": int(want["CreatedDate"].timestamp() * 1000)})
        self.assertEqual(base64.b64decode(out["binary"]), bytes(range(256)))
        self.assertEqual(out["describe"], self.sm.describe_secret(SecretId="app/db")["VersionIdsToStages"])
        self.assertEqual(out["batch"], [["app/db"], ["ResourceNotFoundException"]])
        self.assertEqual(out["missing"], "ResourceNotFoundException")

    # ---- writes ----

    @staticmethod
    def walkthrough(sm, name):
        from botocore.exceptions import ClientError
        steps = [sm.create_secret(Name=name, SecretString="first value"),
                 sm.get_secret_value(SecretId=name),
                 sm.update_secret(SecretId=name, SecretString="second value"),
                 sm.get_secret_value(SecretId=name),
                 sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS"),
                 sm.describe_secret(SecretId=name),
                 sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)]
        try:
            sm.get_secret_value(SecretId=name)
            steps.append("still there")
        except ClientError as e:
            steps.append(e.response["Error"]["Code"])
        return [strip(s) if isinstance(s, dict) else s for s in steps]

    @staticmethod
    def normalised(steps):
        """Version ids, ARN suffixes and dates differ between two runs."""
        text = json.dumps(steps, default=lambda v: "DATE" if isinstance(v, datetime.datetime) else str(v),
                          sort_keys=True)
        ids = {}
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                      lambda m: ids.setdefault(m.group(0), f"VERSION{len(ids)}"), text)
        return json.loads(re.sub(r"(secret:[^\"]*)-[A-Za-z0-9]{6}\"", r'\1-SUFFIX"', text))

    def test_walkthrough_with_forwarding(self):
        theirs = self.walkthrough(self.sm, "walk/through")
        mine = self.walkthrough(self.client, "walk/through")
        self.assertEqual(mine[3]["SecretString"], "second value")	# read-your-writes
        self.assertEqual(mine[4]["SecretString"], "first value")
        self.assertEqual(self.normalised(mine), self.normalised(theirs))
        log = self.agent.read_log()
        for op in ("CreateSecret", "UpdateSecret", "DeleteSecret"):
            self.assertRegex(log, rf"audit: op={op} decision=allowed .*id=\"walk/through\" .*door=sdk")

    def test_describe_sees_a_write_at_once(self):
        self.client.create_secret(Name="rw/describe", SecretString="a")
        before = self.client.describe_secret(SecretId="rw/describe")["VersionIdsToStages"]
        vid = self.client.put_secret_value(SecretId="rw/describe", SecretString="b")["VersionId"]
        after = self.client.describe_secret(SecretId="rw/describe")["VersionIdsToStages"]
        self.assertEqual(len(before), 1)
        self.assertEqual(after[vid], ["AWSCURRENT"])
        self.assertEqual(self.client.get_secret_value(SecretId="rw/describe")["SecretString"], "b")

    def test_writes_refused_by_default_and_without_a_rule(self):
        for extra, access, want in (("", "", "send CreateSecret to " + self.moto.url),
                                    ("forward = yes\n", "allow_write = user:nobody *\n",
                                     "no [access] allow_write rule")):
            port = aws_moto.free_port()
            with make_agent(self.moto, port, extra, access) as ag:
                c = agent_client(port)
                kind, code, message = error_code(c.create_secret, Name="refused/one",
                                                 SecretString="x")
                self.assertEqual(code, "AccessDeniedException")
                self.assertIn(want, message)
                self.assertRegex(ag.read_log(), r"audit: op=CreateSecret decision=denied")
        with self.assertRaises(self.sm.exceptions.ResourceNotFoundException):
            self.sm.describe_secret(SecretId="refused/one")

    # ---- the protocol and who is calling ----

    def raw(self, headers, body=b"{}", method="POST", path="/", port=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def signed_headers(self, body, amz_date=None, target="GetSecretValue"):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        req = AWSRequest(method="POST", url=f"http://127.0.0.1:{self.port}/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager." + target})
        SigV4Auth(Credentials(CALLER_KEY, CALLER_SECRET), "secretsmanager", REGION).add_auth(req)
        headers = dict(req.headers.items())
        if amz_date is not None:
            old = headers["X-Amz-Date"]
            headers["X-Amz-Date"] = amz_date
            headers["Authorization"] = headers["Authorization"].replace(old[:8], amz_date[:8])
        return headers

    def test_signature_required(self):
        body = json.dumps({"SecretId": "app/db"}).encode()
        good = self.signed_headers(body)
        status, _, data = self.raw(good, body)
        self.assertEqual((status, json.loads(data)["SecretString"]), (200, "v2 \u00e9\u4e2d\"\\\n"))
        stale = (datetime.datetime.now(datetime.timezone.utc) -
                 datetime.timedelta(minutes=10)).strftime("%Y%m%dT%H%M%SZ")
        cases = [({k: v for k, v in good.items() if k != "Authorization"},
                  "MissingAuthenticationTokenException"),
                 (dict(good, Authorization="AWS4-HMAC-SHA256 garbled"), "IncompleteSignatureException"),
                 (dict(good, Authorization=good["Authorization"].replace("/secretsmanager/", "/s3/")),
                  "InvalidSignatureException"),
                 (self.signed_headers(body, amz_date=stale), "InvalidSignatureException")]
        for headers, want in cases:
            status, hdrs, data = self.raw(headers, body)
            self.assertEqual(status, 400, data)
            self.assertEqual(json.loads(data)["__type"], want)
            self.assertEqual(hdrs["x-amzn-errortype"], want)
            self.assertIn("x-amzn-requestid", hdrs)
            self.assertNotIn("SecretString", data.decode())
        self.assertIn("expired", json.loads(self.raw(cases[3][0], body)[2])["Message"])

    def test_only_post_json_from_a_loopback_host(self):
        body = json.dumps({"SecretId": "app/db"}).encode()
        good = self.signed_headers(body)
        status, hdrs, _ = self.raw(dict(good, Origin="http://evil.example",
                                        **{"Access-Control-Request-Method": "POST"}),
                                   b"", method="OPTIONS")
        self.assertEqual(status, 405)
        self.assertFalse([k for k in hdrs if k.startswith("access-control")], hdrs)
        self.assertEqual(self.raw(good, body, method="GET")[0], 405)
        self.assertEqual(self.raw(dict(good, Host=f"evil.example:{self.port}"), body)[0], 400)
        self.assertEqual(self.raw(dict(good, **{"Content-Type": "text/plain"}), body)[0], 400)
        status, _, data = self.raw(dict(good, **{"X-Amz-Target": "other.GetSecretValue"}), body)
        self.assertEqual((status, json.loads(data)["__type"]), (400, "UnknownOperationException"))
        status, hdrs, data = self.raw(good, body)
        self.assertEqual(status, 200)
        self.assertFalse([k for k in hdrs if k.startswith("access-control")], hdrs)

    def test_peer_mode_denied_uid(self):
        port = aws_moto.free_port()
        with make_agent(self.moto, port, "", "allow = user:root app/*\n") as ag:
            self.assertEqual(agent_client(port).get_secret_value(SecretId="app/db")["Name"], "app/db")
            # nobody cannot import boto3 from root's Python: the SDK's request is signed here
            # and sent byte for byte by a process running as nobody; botocore parses the answer.
            body = json.dumps({"SecretId": "app/db"}).encode()
            saved, self.port = self.port, port
            try:
                headers = self.signed_headers(body)
            finally:
                self.port = saved
            pw = pwd.getpwnam("nobody")
            script = ("import http.client,json,sys\n"
                      "a=json.loads(sys.argv[1])\n"
                      f"c=http.client.HTTPConnection('127.0.0.1',{port},timeout=10)\n"
                      "c.request('POST','/',body=a['body'].encode(),headers=a['headers'])\n"
                      "r=c.getresponse();print(json.dumps([r.status,dict(r.getheaders()),r.read().decode()]))\n")
            r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                                "--clear-groups", "/usr/bin/python3", "-I", "-c", script,
                                json.dumps({"body": body.decode(), "headers": headers})],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            status, hdrs, data = json.loads(r.stdout)
            from botocore.exceptions import ClientError
            from botocore.parsers import create_parser
            model = self.client.meta.service_model.operation_model("GetSecretValue")
            parsed = create_parser("json").parse({"status_code": status, "headers": hdrs,
                                                  "body": data.encode()}, model.output_shape)
            err = self.client.exceptions.from_code(parsed["Error"]["Code"])(parsed, "GetSecretValue")
            self.assertIsInstance(err, ClientError)
            self.assertEqual((status, parsed["Error"]["Code"]), (400, "AccessDeniedException"))
            self.assertNotIn("v2", data)
            self.assertRegex(ag.read_log(), rf"audit: op=GET decision=denied .*uid={pw.pw_uid} .*door=sdk")

    def test_keys_mode(self):
        port = aws_moto.free_port()
        ag = make_agent(self.moto, port, "auth = keys\nkeys_file = KEYS\n",
                        "allow = key:alice app/*\nallow = key:bob other/*\n")
        keys = os.path.join(ag.dir, "endpoint-keys")
        with open(keys, "w") as f:
            f.write("# local keys\nAKIDALICE00000000001 alice-secret alice\n"
                    "AKIDBOB0000000000001 bob-secret bob\n")
        os.chmod(keys, 0o600)
        with open(ag.config) as f:
            text = f.read().replace("KEYS", keys)
        with open(ag.config, "w") as f:
            f.write(text)
        with ag:
            alice = agent_client(port, "AKIDALICE00000000001", "alice-secret")
            self.assertEqual(strip(alice.get_secret_value(SecretId="app/db")),
                             strip(self.sm.get_secret_value(SecretId="app/db")))
            self.assertEqual(error_code(agent_client(port, "AKIDALICE00000000001", "wrong")
                                        .get_secret_value, SecretId="app/db")[1],
                             "InvalidSignatureException")
            self.assertEqual(error_code(agent_client(port, "AKIDNOBODY0000000001", "x")
                                        .get_secret_value, SecretId="app/db")[1],
                             "UnrecognizedClientException")
            bob = agent_client(port, "AKIDBOB0000000000001", "bob-secret")
            with self.assertRaises(bob.exceptions.ClientError) as cm:
                bob.get_secret_value(SecretId="app/db")
            self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDeniedException")
        ag = make_agent(self.moto, port, "auth = keys\nkeys_file = KEYS\n")
        keys = os.path.join(ag.dir, "endpoint-keys")
        with open(keys, "w") as f:
            f.write("AKIDALICE00000000001 alice-secret alice\n")
        os.chmod(keys, 0o640)
        with open(ag.config) as f:
            text = f.read().replace("KEYS", keys)
        with open(ag.config, "w") as f:
            f.write(text)
        with self.assertRaisesRegex(AssertionError, "readable by group or others"):
            ag.start()

    def test_clients_leaving_and_stopping_with_requests_waiting(self):
        import socket
        import time
        port = aws_moto.free_port()
        with aws_moto.FaultProxy(self.moto.port) as proxy:
            ag = aws_moto.AwsAgent(endpoint=proxy.url, aws_extra="upstream_timeout = 8\n",
                                   cache_extra=f"negative_ttl = 0\n[endpoint]\nlisten = 127.0.0.1:{port}\n"
                                   "forward = yes\n[access]\nallow_write = user:root *\n")
            saved, self.port = self.port, port
            try:
                ag.start()
                # (tags change DescribeSecret: a secret of this test's own)
                self.sm.create_secret(Name="wait/tagged", SecretString="t")
                requests = [("GetSecretValue", {"SecretId": "app/db"}),
                            ("BatchGetSecretValue", {"SecretIdList": ["bin/key", "app/staged"]}),
                            ("ListSecretVersionIds", {"SecretId": "app/db"}),
                            ("DescribeSecret", {"SecretId": "app/db"}),
                            ("TagResource", {"SecretId": "wait/tagged", "Tags": [{"Key": "k", "Value": "v"}]})]

                def send(op, doc):
                    body = json.dumps(doc).encode()
                    hdrs = self.signed_headers(body, target=op)
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s.sendall(("POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                               + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                    return s

                for op in ("GetSecretValue", "BatchGetSecretValue", "ListSecretVersionIds",
                           "DescribeSecret", "TagResource"):
                    proxy.inject(op, aws_moto.Fault("delay", seconds=1.0))
                # 1. Clients that leave before the (slow) answers: the agent carries on.
                gone = [send(op, doc) for op, doc in requests]
                time.sleep(0.3)
                for s in gone:
                    s.close()
                time.sleep(1.5)
                c = agent_client(port)
                self.assertEqual(c.get_secret_value(SecretId="app/db")["Name"], "app/db")
                # 2. Stop with every kind waiting, some clients there and some gone.
                for op in ("GetSecretValue", "BatchGetSecretValue", "ListSecretVersionIds",
                           "DescribeSecret", "TagResource"):
                    proxy.inject(op, aws_moto.Fault("delay", seconds=5.0))
                # the cache holds app/db now: ask for others
                requests[0] = ("GetSecretValue", {"SecretId": "app/staged", "VersionStage": "AWSPENDING"})
                requests[3] = ("DescribeSecret", {"SecretId": "bin/key"})
                there = [send(op, doc) for op, doc in requests]
                left = [send(op, doc) for op, doc in requests]
                time.sleep(0.3)
                for s in left:
                    s.close()
                ag.stop(check=True)
                for s in there:
                    s.close()
            finally:
                self.port = saved
                ag.close()

    def test_loop_guard(self):
        port = aws_moto.free_port()
        ag = make_agent(self.moto, port, env={"AWS_ENDPOINT_URL_SECRETS_MANAGER":
                                              f"http://localhost:{port}"}, aws_endpoint=False)
        with self.assertRaisesRegex(AssertionError, "would call itself"):
            ag.start()


if __name__ == "__main__":
    unittest.main()
