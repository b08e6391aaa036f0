"""The Python package client/python (`smcache`) against real agents.

File backend: boto3-shaped results, botocore-shaped exceptions, batch, the caching
library's API and decorators, threads, fork, an agent restart mid-run, the per-call
deadline, socket discovery, asyncio. AWS backend (moto): every result equals what
boto3 reads from moto itself (ResponseMetadata aside), and rotation reaches decorated
functions without a restart. And `pip install` of the package offline.
"""
import asyncio
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402

PKG = os.path.join(h.ROOT, "client", "python")
sys.path.insert(0, PKG)

import smcache  # noqa: E402
import smcache.aio  # noqa: E402
from smcache import _conn  # noqa: E402

RUN = os.access(h.SMCACHED, os.X_OK)
SKIP_WHY = "needs build/smcached"
UTC = datetime.timezone.utc
BIN = bytes(range(256)) + b"\x00\xff"


def file_secrets():
    return [
        h.secret("app/db", [
            h.version("v-new", ["AWSCURRENT"], string='{"user":"admin","password":"hunter2"}',
                      created=1700000100),
            h.version("v-old", ["AWSPREVIOUS"], string='{"user":"admin","password":"old"}'),
        ], Description="the database"),
        h.secret("app/key", [h.version("v-bin", ["AWSCURRENT"], binary=BIN)]),
        h.secret("app/plain", [h.version("v-p", ["AWSCURRENT"], string="plain ✓ text")]),
    ]


@unittest.skipUnless(RUN, SKIP_WHY)
class FileBackendTest(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return h.Agent(file_secrets())

    def setUp(self):
        self.c = smcache.Client(socket=self.agent.socket, timeout=10)

    def tearDown(self):
        self.c.close()

    def test_get_string_shape(self):
        r = self.c.get_secret_value(SecretId="app/db")
        md = r.pop("ResponseMetadata")
        self.assertEqual(md["HTTPStatusCode"], 200)
        self.assertEqual(r["Name"], "app/db")
        self.assertTrue(r["ARN"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-"))
        self.assertEqual(r["VersionId"], "v-new")
        self.assertEqual(r["VersionStages"], ["AWSCURRENT"])
        self.assertEqual(r["SecretString"], '{"user":"admin","password":"hunter2"}')
        self.assertNotIn("SecretBinary", r)
        self.assertEqual(r["CreatedDate"], datetime.datetime(2023, 11, 14, 22, 15, tzinfo=UTC))
        self.assertIsNotNone(r["CreatedDate"].tzinfo)

    def test_get_binary_unicode_stage_and_version(self):
        r = self.c.get_secret_value(SecretId="app/key")
        self.assertIsInstance(r["SecretBinary"], bytes)
        self.assertEqual(r["SecretBinary"], BIN)
        self.assertNotIn("SecretString", r)
        self.assertEqual(self.c.get_secret_value(SecretId="app/plain")["SecretString"], "plain ✓ text")
        old = self.c.get_secret_value(SecretId="app/db", VersionStage="AWSPREVIOUS")
        self.assertEqual(old["VersionId"], "v-old")
        self.assertIn('"old"', old["SecretString"])
        by_id = self.c.get_secret_value(SecretId="app/db", VersionId="v-old")
        self.assertEqual(by_id["VersionStages"], ["AWSPREVIOUS"])
        arn = self.c.get_secret_value(SecretId="app/db")["ARN"]
        self.assertEqual(self.c.get_secret_value(SecretId=arn)["Name"], "app/db")

    def test_errors_are_botocore_shaped(self):
        with self.assertRaises(smcache.ClientError) as cm:
            self.c.get_secret_value(SecretId="no/such")
        e = cm.exception
        self.assertEqual(e.response["Error"]["Code"], "ResourceNotFoundException")
        self.assertEqual(e.operation_name, "GetSecretValue")
        self.assertIn("An error occurred (ResourceNotFoundException) when calling the "
                      "GetSecretValue operation", str(e))
        self.assertIsInstance(e, self.c.exceptions.ResourceNotFoundException)
        with self.assertRaises(self.c.exceptions.ResourceNotFoundException):
            self.c.get_secret_value(SecretId="app/db", VersionStage="NOPE")
        with self.assertRaises(smcache.ResourceNotFoundException) as cm:
            self.c.describe_secret(SecretId="no/such")
        self.assertEqual(cm.exception.operation_name, "DescribeSecret")
        # Arguments are checked before anything is sent, as botocore does.
        with self.assertRaises(smcache.ParamValidationError):
            self.c.get_secret_value(SecretId="app/db", Stage="x")
        with self.assertRaises(smcache.ParamValidationError):
            self.c.get_secret_value()
        with self.assertRaises(smcache.ParamValidationError):
            self.c.get_secret_value(SecretId="x" * 2049)
        # The connection survived the error replies.
        self.assertEqual(self.c.get_secret_value(SecretId="app/plain")["VersionId"], "v-p")

    def test_describe(self):
        d = self.c.describe_secret(SecretId="app/db")
        d.pop("ResponseMetadata")
        self.assertEqual(d["Name"], "app/db")
        self.assertEqual(d["Description"], "the database")
        self.assertEqual(d["VersionIdsToStages"], {"v-new": ["AWSCURRENT"], "v-old": ["AWSPREVIOUS"]})
        self.assertNotIn("SecretString", d)

    def test_batch_is_pipelined_and_ordered(self):
        before = self.agent.stats()
        r = self.c.batch_get_secret_value(SecretIdList=["app/plain", "no/such", "app/key", "app/db"])
        self.assertEqual([v["Name"] for v in r["SecretValues"]], ["app/plain", "app/key", "app/db"])
        self.assertEqual(r["SecretValues"][1]["SecretBinary"], BIN)
        self.assertEqual(r["Errors"], [{"SecretId": "no/such", "ErrorCode": "ResourceNotFoundException",
                                        "Message": r["Errors"][0]["Message"]}])
        after = self.agent.stats()
        conns = [k for k in after if "accepted" in k or k.endswith("connections_total")]
        for k in conns:   # one connection at most for the whole batch
            self.assertLessEqual(after[k] - before[k], 2, k)
        with self.assertRaises(smcache.ParamValidationError):
            self.c.batch_get_secret_value(SecretIdList=[f"s{i}" for i in range(21)])
        with self.assertRaises(smcache.ParamValidationError):
            self.c.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["x"]}])

    def test_secret_cache_api(self):
        cache = smcache.SecretCache(config=smcache.SecretCacheConfig(), client=self.c)
        self.assertEqual(json.loads(cache.get_secret_string("app/db"))["password"], "hunter2")
        self.assertEqual(json.loads(cache.get_secret_string("app/db", "AWSPREVIOUS"))["password"], "old")
        self.assertEqual(cache.get_secret_binary("app/key"), BIN)
        self.assertIsNone(cache.get_secret_binary("app/db"))
        self.assertIsNone(cache.get_secret_string("app/key"))
        # As in the library: an absent stage gives None, an absent secret raises.
        self.assertIsNone(cache.get_secret_string("app/db", "NO_SUCH_STAGE"))
        with self.assertRaises(smcache.ClientError) as cm:
            cache.get_secret_string("no/such")
        self.assertEqual(cm.exception.response["Error"]["Code"], "ResourceNotFoundException")
        prev = smcache.SecretCache(smcache.SecretCacheConfig(default_version_stage="AWSPREVIOUS"), self.c)
        self.assertIn('"old"', prev.get_secret_string("app/db"))
        with self.assertRaises(TypeError):
            smcache.SecretCacheConfig(max_cache_sizes=3)
        cfg = smcache.SecretCacheConfig(max_cache_size=5, secret_refresh_interval=60)
        self.assertEqual((cfg.max_cache_size, cfg.exception_retry_delay_max), (5, 3600))

        class Hook:
            def put(self, obj):
                obj = dict(obj)
                obj["SecretString"] = obj.get("SecretString", "").upper()
                return obj

            def get(self, obj):
                return obj
        hooked = smcache.SecretCache(smcache.SecretCacheConfig(secret_cache_hook=Hook()), self.c)
        self.assertEqual(hooked.get_secret_string("app/plain"), "PLAIN ✓ TEXT")

    def test_decorators(self):
        cache = smcache.SecretCache(client=self.c)

        @smcache.InjectSecretString("app/plain", cache)
        def f(secret, extra, kw=None):
            return secret, extra, kw
        self.assertEqual(f("x", kw=1), ("plain ✓ text", "x", 1))

        class Svc:
            @smcache.InjectSecretString("app/plain", cache)
            def method(self, secret):
                return self, secret
        s = Svc()
        self.assertEqual(s.method(), (s, "plain ✓ text"))

        @smcache.InjectKeywordedSecretString("app/db", cache, user="user", pw="password")
        def g(user, pw, other=0):
            return user, pw, other
        self.assertEqual(g(other=2), ("admin", "hunter2", 2))

        @smcache.InjectKeywordedSecretString("app/db", cache, x="missing")
        def bad_key(x):
            return x
        with self.assertRaisesRegex(RuntimeError, "does not contain key missing"):
            bad_key()

        @smcache.InjectKeywordedSecretString("app/plain", cache, x="y")
        def not_json(x):
            return x
        with self.assertRaisesRegex(RuntimeError, "not valid JSON"):
            not_json()

    def test_decorators_resolve_per_call(self):
        calls = []

        class Counting:
            def get_secret_string(self, secret_id, version_stage=None):
                calls.append(secret_id)
                return f"v{len(calls)}"

        @smcache.InjectSecretString("s", Counting())
        def f(secret):
            return secret
        self.assertEqual(calls, [])     # nothing read at decoration time
        self.assertEqual([f(), f()], ["v1", "v2"])

    def test_threads_share_a_client(self):
        errors, n = [], 40
        expect = {"app/db": "v-new", "app/key": "v-bin", "app/plain": "v-p"}

        def worker(k):
            try:
                for i in range(n):
                    sid = list(expect)[(k + i) % 3]
                    r = self.c.get_secret_value(SecretId=sid)
                    if r["VersionId"] != expect[sid]:
                        errors.append((sid, r["VersionId"]))
                    if i % 10 == 0:
                        b = self.c.batch_get_secret_value(SecretIdList=list(expect))
                        if [v["VersionId"] for v in b["SecretValues"]] != list(expect.values()):
                            errors.append(("batch", b))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertLessEqual(len(self.c._idle), smcache.client.DEFAULT_POOL_SIZE)

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork")
    def test_fork_child_never_shares_the_parents_connection(self):
        self.assertEqual(self.c.get_secret_value(SecretId="app/plain")["VersionId"], "v-p")
        parent_conn = self.c._idle[0]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:   # child: hammer while the parent does too, then report
            code = 1
            try:
                os.close(r)
                ok = all(self.c.get_secret_value(SecretId="app/db")["VersionId"] == "v-new"
                         for _ in range(200))
                shared = any(c is parent_conn for c in self.c._idle)
                os.write(w, b"ok" if ok and not shared else b"bad")
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        ok = all(self.c.get_secret_value(SecretId="app/key")["VersionId"] == "v-bin"
                 for _ in range(200))
        _, status = os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as f:
            child = f.read()
        self.assertTrue(ok)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(child, b"ok")
        self.assertIn(parent_conn, self.c._idle)   # the parent's connection is still usable
        self.assertEqual(self.c.get_secret_value(SecretId="app/plain")["VersionId"], "v-p")

    def test_asyncio_client(self):
        async def main():
            async with smcache.aio.Client(socket=self.agent.socket, timeout=10) as a:
                rs = await asyncio.gather(*(a.get_secret_value(SecretId=s)
                                            for s in ["app/db", "app/key", "app/plain"] * 20))
                self.assertEqual([x["VersionId"] for x in rs], ["v-new", "v-bin", "v-p"] * 20)
                sync = self.c.get_secret_value(SecretId="app/db")
                got = await a.get_secret_value(SecretId="app/db")
                self.assertEqual(got, sync)
                self.assertEqual(await a.describe_secret(SecretId="app/db"),
                                 self.c.describe_secret(SecretId="app/db"))
                b = await a.batch_get_secret_value(SecretIdList=["app/key", "nope"])
                self.assertEqual(b["SecretValues"][0]["SecretBinary"], BIN)
                self.assertEqual(b["Errors"][0]["ErrorCode"], "ResourceNotFoundException")
                with self.assertRaises(a.exceptions.ResourceNotFoundException):
                    await a.get_secret_value(SecretId="nope")
                self.assertTrue((await a.ping()).startswith("smcached"))
        asyncio.run(main())


@unittest.skipUnless(RUN, SKIP_WHY)
class ConnectionTest(unittest.TestCase):
    def test_agent_restart_mid_run(self):
        with h.Agent(file_secrets()) as agent:
            c = smcache.Client(socket=agent.socket, timeout=15)
            self.assertEqual(c.get_secret_value(SecretId="app/plain")["VersionId"], "v-p")
            stop = threading.Event()
            results, errors = [], []

            def reader():
                while not stop.is_set():
                    try:
                        results.append(c.get_secret_value(SecretId="app/db")["VersionId"])
                    except Exception as e:  # noqa: BLE001
                        errors.append(repr(e))
            threads = [threading.Thread(target=reader) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            agent.stop()
            time.sleep(0.3)          # the agent is gone for a while
            agent.start()
            n_at_restart = len(results)
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [])
            self.assertGreater(len(results), n_at_restart)
            self.assertEqual(set(results), {"v-new"})

            async def async_after_restart(a):
                self.assertEqual((await a.get_secret_value(SecretId="app/plain"))["VersionId"], "v-p")
                agent.stop()
                agent.start()
                self.assertEqual((await a.get_secret_value(SecretId="app/plain"))["VersionId"], "v-p")
            asyncio.run(async_after_restart(smcache.aio.Client(socket=agent.socket)))
            c.close()

    def test_per_call_deadline(self):
        with h.Agent(file_secrets()) as agent:
            c = smcache.Client(socket=agent.socket, timeout=0.5)
            c.get_secret_value(SecretId="app/plain")
            os.kill(agent.pid(), signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with self.assertRaises(smcache.AgentUnavailableError):
                    c.get_secret_value(SecretId="app/plain")
                took = time.monotonic() - t0
            finally:
                os.kill(agent.pid(), signal.SIGCONT)
            self.assertGreater(took, 0.4)
            self.assertLess(took, 3.0)
            # The timed-out connection was dropped; the next call works.
            self.assertEqual(c.get_secret_value(SecretId="app/plain")["VersionId"], "v-p")

    def test_no_agent_error_lists_paths_and_names_the_variable(self):
        d = tempfile.mkdtemp(prefix="smc-py-")
        try:
            path = os.path.join(d, "none.sock")
            t0 = time.monotonic()
            with mock.patch.dict(os.environ, {"SMCACHE_SOCKET": path}):
                with self.assertRaises(smcache.AgentUnavailableError) as cm:
                    smcache.Client(timeout=5).ping()
            self.assertLess(time.monotonic() - t0, 2.0)   # never reached: fails at once
            self.assertIn(path, str(cm.exception))
            self.assertIn("SMCACHE_SOCKET", str(cm.exception))
        finally:
            shutil.rmtree(d)

    def test_discovery_order(self):
        env = {k: v for k, v in os.environ.items() if k not in ("SMCACHE_SOCKET", "XDG_RUNTIME_DIR")}
        with mock.patch.dict(os.environ, env, clear=True), mock.patch("os.geteuid", return_value=1000):
            self.assertEqual(_conn.candidates(), [("/tmp/smcache-1000/smcached.sock", "peer"),
                                                  ("/run/smcache/smcached.sock", "owner")])
            os.environ["XDG_RUNTIME_DIR"] = "/run/user/1000"
            self.assertEqual(_conn.candidates()[0], ("/run/user/1000/smcache/smcached.sock", "peer"))
            os.environ["XDG_RUNTIME_DIR"] = "relative"
            self.assertEqual(_conn.candidates()[0][0], "/tmp/smcache-1000/smcached.sock")
            os.environ["SMCACHE_SOCKET"] = "/x/y.sock"
            self.assertEqual(_conn.candidates(), [("/x/y.sock", "given")])
        with mock.patch.dict(os.environ, env, clear=True), mock.patch("os.geteuid", return_value=0):
            self.assertEqual(_conn.candidates(), [("/run/smcache/smcached.sock", "owner")])

    def test_untrusted_peers_are_refused(self):
        with h.Agent(file_secrets()) as agent:
            # The per-user path: an agent running as another user is refused, and the
            # next candidate is tried.
            with mock.patch.object(_conn, "candidates",
                                   return_value=[(agent.socket, "peer"), ("/nonexistent/s.sock", "owner")]), \
                    mock.patch.object(_conn, "peer_uid", return_value=4242), \
                    mock.patch("os.geteuid", return_value=1000):
                with self.assertRaises(smcache.AgentUnavailableError) as cm:
                    smcache.Client(timeout=2).ping()
            msg = str(cm.exception)
            self.assertIn(f"{agent.socket} (the agent there runs as uid 4242, not as root or uid 1000)", msg)
            self.assertIn("/nonexistent/s.sock (", msg)
            # The system path: a socket owned by neither root nor the agent's user is refused...
            with mock.patch.object(_conn, "candidates", return_value=[(agent.socket, "owner")]):
                if os.geteuid() == 0:
                    os.chown(agent.socket, 5555, -1)
                    with self.assertRaises(smcache.AgentUnavailableError) as cm:
                        smcache.Client(timeout=2).ping()
                    self.assertIn("owned by uid 5555", str(cm.exception))
                    os.chown(agent.socket, 0, -1)
                # ...one owned by root or by the agent's uid is believed.
                self.assertTrue(smcache.Client(timeout=2).ping().startswith("smcached"))


@unittest.skipUnless(RUN and aws_moto.have_moto(), "needs boto3, moto_server and build/smcached")
class AwsBackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = aws_moto.Moto().start()
        cls.sm = cls.moto.client()
        cls.agent = aws_moto.AwsAgent(endpoint=cls.moto.url,
                                      cache_extra="negative_ttl = 0\nttl = 2\nrefresh_ahead = 0\n")
        cls.agent.start()
        cls.c = smcache.Client(socket=cls.agent.socket)
        cls.sm.create_secret(Name="py/str", SecretString='{"user":"u","password":"p1"}',
                             Description="a string")
        cls.sm.create_secret(Name="py/bin", SecretBinary=BIN)
        # PutSecretValue moves AWSCURRENT itself (moto returns the old version for a read
        # without a stage after UpdateSecretVersionStage: shared/notes/moto.md).
        cls.sm.put_secret_value(SecretId="py/str", SecretString='{"user":"u","password":"p2"}')

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        try:
            cls.agent.stop()
        finally:
            cls.agent.close()
            cls.moto.stop()

    @staticmethod
    def strip(r):
        r = dict(r)
        r.pop("ResponseMetadata", None)
        return r

    def test_get_equals_boto3(self):
        for kw in ({"SecretId": "py/str"}, {"SecretId": "py/bin"},
                   {"SecretId": "py/str", "VersionStage": "AWSPREVIOUS"}):
            with self.subTest(**kw):
                want = self.strip(self.sm.get_secret_value(**kw))
                self.assertEqual(self.strip(self.c.get_secret_value(**kw)), want)
        want = self.strip(self.sm.get_secret_value(SecretId="py/str", VersionStage="AWSPREVIOUS"))
        self.assertEqual(self.strip(self.c.get_secret_value(SecretId="py/str", VersionId=want["VersionId"])),
                         want)
        self.assertEqual(self.strip(self.c.get_secret_value(SecretId=want["ARN"])),
                         self.strip(self.sm.get_secret_value(SecretId=want["ARN"])))

    def test_describe_equals_boto3_for_what_the_agent_carries(self):
        want = self.strip(self.sm.describe_secret(SecretId="py/str"))
        got = self.strip(self.c.describe_secret(SecretId="py/str"))
        for key, value in got.items():
            self.assertEqual(value, want.get(key), key)
        self.assertEqual(set(got) - set(want), set())
        self.assertEqual(got["VersionIdsToStages"], want["VersionIdsToStages"])

    def test_batch_equals_boto3(self):
        ids = ["py/str", "py/bin", "py/none"]
        want = self.strip(self.sm.batch_get_secret_value(SecretIdList=ids))
        got = self.strip(self.c.batch_get_secret_value(SecretIdList=ids))
        key = lambda v: v["Name"]  # noqa: E731 - AWS does not promise an order
        self.assertEqual(sorted(got["SecretValues"], key=key), sorted(want["SecretValues"], key=key))
        self.assertEqual([(e["SecretId"], e["ErrorCode"]) for e in got["Errors"]],
                         [(e["SecretId"], e["ErrorCode"]) for e in want["Errors"]])

    def test_exception_codes_equal_botocore(self):
        from botocore.exceptions import ClientError as BotoClientError
        for kw in ({"SecretId": "py/none"}, {"SecretId": "py/str", "VersionStage": "NOPE"}):
            with self.subTest(**kw):
                with self.assertRaises(BotoClientError) as boto:
                    self.sm.get_secret_value(**kw)
                with self.assertRaises(smcache.ClientError) as ours:
                    self.c.get_secret_value(**kw)
                self.assertEqual(ours.exception.response["Error"]["Code"],
                                 boto.exception.response["Error"]["Code"])

    def test_rotation_reaches_decorated_functions_without_restart(self):
        self.sm.create_secret(Name="py/rot", SecretString='{"password":"one"}')
        # moto answers reads without a stage with the old version after a stage move, so the
        # SecretCache asks for its default_version_stage (AWSCURRENT) by name.
        cache = smcache.SecretCache(client=self.c)

        @smcache.InjectKeywordedSecretString("py/rot", cache, pw="password")
        def connect(pw):
            return pw
        self.assertEqual(connect(), "one")
        aws_moto.rotate(self.sm, "py/rot", '{"password":"two"}')
        deadline = time.monotonic() + 2 + 1 + 2    # ttl + 1 s, plus slack for a loaded host
        while connect() != "two" and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(connect(), "two")
        self.assertEqual(cache.get_secret_string("py/rot", "AWSPREVIOUS"), '{"password":"one"}')


class PipInstallTest(unittest.TestCase):
    def test_pip_install_offline(self):
        try:
            import setuptools  # noqa: F401
            subprocess.run([sys.executable, "-m", "pip", "--version"], check=True, capture_output=True)
        except Exception:  # noqa: BLE001
            self.skipTest("needs pip and setuptools")
        target = tempfile.mkdtemp(prefix="smc-pip-")
        build = tempfile.mkdtemp(prefix="smc-pkg-")
        try:
            src = os.path.join(build, "python")
            shutil.copytree(PKG, src)   # keep build/ and egg-info out of the source tree
            r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                                "--no-build-isolation", "--no-deps", "--quiet", "--target", target, src],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.exists(os.path.join(target, "smcache", "py.typed")))
            r = subprocess.run([sys.executable, "-c", "import smcache, smcache.aio; print(smcache.__file__)"],
                               capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=target),
                               cwd=target)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.strip().startswith(target), r.stdout)
        finally:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
