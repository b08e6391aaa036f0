"""HEALTH and `smcache health` (issue 10, part 4): liveness and readiness apart.

- The file backend: live and ready, credentials not needed; text and --json output; the
  raw HEALTH reply decoded with the harness's own codec (PROTOCOL.md section 6).
- Start-up prefetch: not ready (exit 7, reason named) until the prefetch is answered.
- Credentials: with moto in IAM-auth mode, an agent whose key moto does not know turns
  not ready ("rejected") on its first refused call while `ping` still exits 0, and ready
  again once moto accepts the key, without any client traffic (HEALTH's own probe).
"""
import json
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import aws_moto
import smc_harness as h

OP_HEALTH = 5
T_READY, T_REASON, T_CREDENTIALS = 0x12, 0x13, 0x14
T_BREAKER_OPEN, T_PREFETCH_PENDING, T_CACHE_SECRETS = 0x19, 0x1a, 0x1b
EXIT_NOT_READY = 7


def u64(b):
    return int.from_bytes(b, "big")


def health_json(agent):
    r = agent.cli("health", "--json")
    return r.returncode, json.loads(r.stdout), r.stderr.decode(errors="replace")


def wait_for(pred, timeout=30.0, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


@unittest.skipUnless(h.have_binaries(), "build/smcached or build/smcache is not built")
class FileBackendHealth(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return h.Agent([h.secret("app/db", [h.version("11111111-1111-1111-1111-111111111111",
                                                      ["AWSCURRENT"], string="v")])])

    def test_ready_text(self):
        r = self.agent.cli("health")
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("live:         yes\n", out)
        self.assertIn("ready:        yes\n", out)
        self.assertIn("credentials:  not-needed\n", out)
        self.assertIn("prefetch:     done\n", out)

    def test_ready_json(self):
        self.assertEqual(self.agent.cli("get", "app/db").returncode, 0)
        rc, obj, err = health_json(self.agent)
        self.assertEqual(rc, 0, err)
        self.assertEqual(list(obj)[:4], ["Live", "Ready", "Reasons", "Credentials"])
        self.assertEqual((obj["Live"], obj["Ready"], obj["Reasons"]), (True, True, []))
        self.assertEqual(obj["Credentials"], "not-needed")
        self.assertFalse(obj["BreakerOpen"])
        self.assertEqual(obj["CacheSecrets"], 1)
        self.assertIn("LastUpstreamSuccessDate", obj)

    def test_raw_reply(self):
        with self.agent.connect() as s:
            s.sendall(h.frame(OP_HEALTH, request_id=9))
            reply = h.read_reply(s)
        self.assertEqual((reply.op, reply.request_id, reply.status),
                         (OP_HEALTH | h.OP_REPLY, 9, h.ST_OK))
        self.assertEqual(u64(reply.get(T_READY)), 1)
        self.assertEqual(u64(reply.get(T_CREDENTIALS)), 0)
        self.assertEqual(u64(reply.get(T_PREFETCH_PENDING)), 0)
        self.assertIsNone(reply.get(T_REASON))
        # Fields in a HEALTH request are refused; the connection stays usable.
        with self.agent.connect() as s:
            s.sendall(h.frame(OP_HEALTH, request_id=10,
                              fields=h.field(h.T_SECRET_ID, b"app/db")))
            self.assertEqual(h.read_reply(s).status, h.ST_BAD_REQUEST)
            s.sendall(h.frame(OP_HEALTH, request_id=11))
            self.assertEqual(h.read_reply(s).status, h.ST_OK)

    def test_usage(self):
        for args in (["health", "x"], ["health", "--output", "text"], ["health", "--field", "a"]):
            self.assertEqual(self.agent.cli(*args).returncode, 2, args)


@unittest.skipUnless(h.have_binaries() and aws_moto.have_moto(), "needs the binaries, moto, boto3")
class PrefetchReadiness(unittest.TestCase):
    def test_not_ready_until_prefetch_is_answered(self):
        with aws_moto.Moto() as moto, aws_moto.FaultProxy(moto.port) as proxy:
            moto.client().create_secret(Name="pre/db", SecretString="x")
            proxy.inject("*", aws_moto.Fault("delay", seconds=4))
            with aws_moto.AwsAgent(endpoint=proxy.url,
                                   cache_extra="negative_ttl = 0\nprefetch = pre/db\n") as agent:
                rc, obj, err = health_json(agent)
                self.assertEqual(rc, EXIT_NOT_READY, err)
                self.assertEqual(obj["PrefetchPending"], 1)
                self.assertIn("start-up prefetch not finished", obj["Reasons"])
                self.assertEqual(agent.cli("ping").returncode, 0)     # live all along
                self.assertTrue(wait_for(lambda: agent.cli("health").returncode == 0, 20))
                rc, obj, err = health_json(agent)
                self.assertEqual((obj["PrefetchPending"], obj["CacheSecrets"]), (0, 1))


@unittest.skipUnless(h.have_binaries() and aws_moto.have_moto(), "needs the binaries, moto, boto3")
class CredentialReadiness(unittest.TestCase):
    """moto in IAM-auth mode: the agent's key is unknown to moto, so it is refused while
    checks are on (403 InvalidClientTokenId) and accepted while actions are free."""

    def test_rejected_then_fixed(self):
        with aws_moto.Moto(auth_free_actions=1000) as moto:
            moto.client().create_secret(Name="auth/db", SecretString="ok")
            mport = aws_moto.free_port()
            # The HTTP door's /ready (issue 12) gives the same answer as HEALTH.
            with aws_moto.AwsAgent(endpoint=moto.url, cache_extra="negative_ttl = 0\n[http]\n"
                                   f"metrics_listen = 127.0.0.1:{mport}\n") as agent:
                def ready():
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/ready", timeout=5) as r:
                            return r.status, r.read().decode()
                    except urllib.error.HTTPError as e:
                        return e.code, e.read().decode()
                # Free actions: the probe HEALTH starts proves the credentials.
                self.assertTrue(wait_for(lambda: agent.cli("health").returncode == 0, 20),
                                agent.cli("health").stdout)
                self.assertEqual(health_json(agent)[1]["Credentials"], "ok")
                self.assertEqual(ready(), (200, "ready"))

                moto.reset_auth(0)                      # checks on: the key is now refused
                rc, _, err = agent.get("auth/db")
                self.assertEqual(rc, 4, err)            # EXIT_DENIED: credentials refused
                rc, obj, err = health_json(agent)
                self.assertEqual(rc, EXIT_NOT_READY, err)
                self.assertFalse(obj["Ready"])
                self.assertEqual(obj["Credentials"], "rejected")
                self.assertIn("the upstream rejected the agent's credentials", obj["Reasons"])
                self.assertEqual(obj["LastUpstreamFailure"],
                                 "the agent's credentials were refused upstream")
                r = agent.cli("health")
                self.assertEqual(r.returncode, EXIT_NOT_READY)
                self.assertIn(b"reasons:      the upstream rejected", r.stdout)
                self.assertEqual(agent.cli("ping").returncode, 0)   # ping stays liveness
                code, text = ready()
                self.assertEqual(code, 503, text)
                self.assertIn("the upstream rejected the agent's credentials", text)

                moto.reset_auth(1000)                   # "fixed": the key is accepted again
                t0 = time.monotonic()
                self.assertTrue(wait_for(lambda: agent.cli("health").returncode == 0, 30),
                                agent.cli("health").stdout)
                # Through HEALTH's own probe (at most one per 5 s), not client reads.
                self.assertLess(time.monotonic() - t0, 15)
                rc, obj, _ = health_json(agent)
                self.assertEqual((obj["Ready"], obj["Credentials"]), (True, "ok"))
                self.assertEqual(agent.get("auth/db")[:2], (0, b"ok"))
                self.assertEqual(ready(), (200, "ready"))


if __name__ == "__main__":
    unittest.main()
