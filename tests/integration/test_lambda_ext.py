"""smcached as a Lambda extension, against a stand-in of the Extensions API (lambda_standin.py)
and moto, started the way Lambda starts it: the layer (`make lambda-layer`, deploy/lambda/
mklayer.py) unpacked, its extensions/smcache launcher run with the AWS Parameters and Secrets
extension's environment, no configuration file.

- Registration with the documented headers and events; INIT ends (the first event/next)
  only after the SMCACHE_PREFETCH secrets are fetched.
- A function stand-in reads through the HTTP door exactly as code written for the AWS
  extension does (localhost:PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, the
  X-Aws-Parameters-Secrets-Token header = AWS_SESSION_TOKEN); values equal boto3's.
- INVOKE events are answered with the next event/next; a SHUTDOWN with a 2 s deadline ends
  the agent with status 0 within it.
- The environment is honoured (SECRETS_MANAGER_TTL, cache size, port) and refused with
  the variable's name when the AWS extension would refuse it; the refusal reaches Lambda
  through /init/error with the registered extension's identifier.
- No AWS_LAMBDA_RUNTIME_API: a clear start-up error.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import lambda_standin  # noqa: E402
import smc_harness as h  # noqa: E402

ROOT = h.ROOT
RUN = aws_moto.have_moto() and h.have_binaries()
MOTO = None
LAYER = None
TOKEN = "lambda-session-token-" + os.urandom(6).hex()


def setUpModule():
    global MOTO, LAYER
    if not RUN:
        return
    MOTO = aws_moto.Moto().start()
    LAYER = tempfile.mkdtemp(prefix="smc-layer-")
    subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "lambda", "mklayer.py"),
                    "--build", h.BUILD, "--out", os.path.join(LAYER, "layer.zip"),
                    "--unpack", os.path.join(LAYER, "opt")], check=True, capture_output=True)


def tearDownModule():
    if MOTO is not None:
        MOTO.stop()
    if LAYER is not None:
        shutil.rmtree(LAYER, ignore_errors=True)


@unittest.skipUnless(RUN, "needs boto3, moto_server and the built binaries")
class LambdaExtension(unittest.TestCase):
    def setUp(self):
        self.sm = MOTO.client()
        self.tmp = tempfile.mkdtemp(prefix="smc-lambda-")
        self.proc = None
        self.port = aws_moto.free_port()

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def env(self, api, endpoint=None, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMCACHE_"))}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": api.address if api else "",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": aws_moto.FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": aws_moto.FAKE_SECRET,
            "AWS_SESSION_TOKEN": TOKEN,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint or MOTO.url,
            "AWS_CONFIG_FILE": os.path.join(self.tmp, "none"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.tmp, "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(self.port),
            "TMPDIR": self.tmp,
        })
        if api is None:
            del env["AWS_LAMBDA_RUNTIME_API"]
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def launch(self, env):
        launcher = os.path.join(LAYER, "opt", "extensions", "smcache")
        self.log = open(os.path.join(self.tmp, "agent.log"), "w+")
        self.proc = subprocess.Popen([launcher], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.log.close)

    def agent_log(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def get(self, secret_id, token=TOKEN, **params):
        q = urllib.parse.urlencode(dict(secretId=secret_id, **params))
        req = urllib.request.Request(f"http://localhost:{self.port}/secretsmanager/get?{q}")
        if token is not None:
            req.add_header("X-Aws-Parameters-Secrets-Token", token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def test_lifecycle_prefetch_reads_invokes_shutdown(self):
        name = f"lambda/db-{time.monotonic_ns()}"
        other = f"lambda/api-{time.monotonic_ns()}"
        self.sm.create_secret(Name=name, SecretString="from-lambda-" + os.urandom(4).hex())
        self.sm.create_secret(Name=other, SecretString="other")
        want = self.sm.get_secret_value(SecretId=name)
        proxy = aws_moto.FaultProxy(MOTO.port).start()
        self.addCleanup(proxy.stop)
        with lambda_standin.ExtensionsApi() as api:
            env = self.env(api, endpoint=proxy.url, SMCACHE_PREFETCH=name, SECRETS_MANAGER_TTL=120)
            # Every GetSecretValue waits 0.5 s: INIT must end only after the prefetch landed.
            proxy.inject("GetSecretValue", aws_moto.Fault("delay", seconds=0.5))
            t0 = time.monotonic()
            self.launch(env)
            self.assertTrue(api.wait_init_done(20), self.agent_log())
            init_s = time.monotonic() - t0
            ident = api.the_extension()
            self.assertEqual(api.registered[ident]["name"], "smcache")
            self.assertEqual(sorted(api.registered[ident]["events"]), ["INVOKE", "SHUTDOWN"])
            self.assertGreaterEqual(proxy.counts.get("GetSecretValue", 0), 1, "prefetched during INIT")
            self.assertGreaterEqual(init_s, 0.5, "INIT waited for the prefetch")
            reg = [r for r in api.requests if r[1].endswith("/register")][0]
            self.assertEqual(reg[2].get("Lambda-Extension-Name"), "smcache")

            # The function reads as code written for the AWS extension does: a hit (prefetched).
            calls = proxy.counts.get("GetSecretValue", 0)
            t1 = time.monotonic()
            got = self.get(name)
            self.assertLess(time.monotonic() - t1, 0.4, "served from the prefetched cache")
            self.assertEqual(proxy.counts.get("GetSecretValue", 0), calls)
            for k in ("ARN", "Name", "VersionId", "SecretString", "VersionStages"):
                self.assertEqual(got[k], want[k], k)
            self.assertEqual(self.get(other, versionStage="AWSCURRENT")["SecretString"], "other")
            # The token is required, as by the AWS extension.
            with self.assertRaises(urllib.error.HTTPError) as e:
                self.get(name, token="wrong")
            self.assertEqual(e.exception.code, 403)

            for i in range(3):
                api.invoke(ident)
                self.assertTrue(api.wait_next_calls(ident, 2 + i), self.agent_log())
            self.assertEqual(self.proc.poll(), None)

            t2 = time.monotonic()
            api.shutdown_event(ident, deadline_s=2.0)
            rc = self.proc.wait(timeout=5)
            self.assertEqual(rc, 0, self.agent_log())
            self.assertLess(time.monotonic() - t2, 2.0, "stopped within the SHUTDOWN deadline")
            self.assertIn("SHUTDOWN", self.agent_log())

    def test_environment_is_honoured(self):
        with lambda_standin.ExtensionsApi() as api:
            env = self.env(api, SECRETS_MANAGER_TTL=7, PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE=50,
                           PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS=2,
                           PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL="debug")
            out = subprocess.run([os.path.join(LAYER, "opt", "smcache", "lib", "ld-linux-x86-64.so.2"),
                                  "--library-path", os.path.join(LAYER, "opt", "smcache", "lib"),
                                  os.path.join(LAYER, "opt", "smcache", "bin", "smcached"),
                                  "--lambda-extension", "--check-config"],
                                 env=env, capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            for line in ("cache.ttl = 7", "cache.max_entries = 50", "aws.max_connections = 2",
                         "agent.log_level = debug", f"http.listen = 127.0.0.1:{self.port}",
                         "http.ssrf_env_variables = AWS_SESSION_TOKEN", "backend.type = aws"):
                self.assertIn(line, out.stdout)

    def test_bad_environment_is_refused_and_reported_to_lambda(self):
        with lambda_standin.ExtensionsApi() as api:
            self.launch(self.env(api, SECRETS_MANAGER_TTL=900))
            rc = self.proc.wait(timeout=10)
            self.assertNotEqual(rc, 0)
            self.assertIn("SECRETS_MANAGER_TTL", self.agent_log())
            (path, headers, body) = api.errors[0]
            self.assertTrue(path.endswith("/init/error"))
            self.assertEqual(headers.get("Lambda-Extension-Function-Error-Type"), "Extension.InitError")
            self.assertIn(headers.get("Lambda-Extension-Identifier"), api.registered)
            self.assertIn("SECRETS_MANAGER_TTL", json.loads(body)["errorMessage"])

    def test_no_runtime_api(self):
        self.launch(self.env(None))
        rc = self.proc.wait(timeout=10)
        self.assertNotEqual(rc, 0)
        self.assertIn("AWS_LAMBDA_RUNTIME_API", self.agent_log())

    def test_layer_layout(self):
        import zipfile
        with zipfile.ZipFile(os.path.join(LAYER, "layer.zip")) as z:
            names = {i.filename: i for i in z.infolist()}
        self.assertIn("extensions/smcache", names)
        self.assertEqual((names["extensions/smcache"].external_attr >> 16) & 0o111, 0o111)
        for need in ("smcache/bin/smcached", "smcache/bin/smcache", "smcache/lib/libc.so.6",
                     "smcache/lib/ld-linux-x86-64.so.2", "smcache/lib/libcurl.so.4"):
            self.assertIn(need, names)


if __name__ == "__main__":
    unittest.main()
