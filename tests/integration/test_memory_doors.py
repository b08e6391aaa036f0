"""No plaintext left in smcached's memory after reads through its TCP doors (aws backend
on moto_server, plain HTTP upstream through the fault proxy).

test_memory_aws.py scans after reads over the Unix socket. The two HTTP front doors
carry values through other buffers: libevent's evhttp input and output evbuffers
(chains allocated, grown, pulled up and freed by libevent), the JSON rendered for each
reply, and, on the Secrets Manager endpoint, the client's request body (a write's
SecretString, JSON-escaped) parsed with cJSON and forwarded upstream.

- The HTTP door (`[http] listen`, the AWS Secrets Manager Agent's API): GET
  /secretsmanager/get?secretId=... with X-Aws-Parameters-Secrets-Token, cold, hits,
  refreshNow=true, on one keep-alive connection and on fresh ones, and a miss.
- The Secrets Manager endpoint (`[endpoint] listen`, boto3 with endpoint_url):
  GetSecretValue, BatchGetSecretValue, and writes passed through (`forward = yes`):
  PutSecretValue and CreateSecret with values only the request body carried, read back
  at once through the agent (read-your-writes).

After each phase the scan (test_memory.scan_memory over /proc/PID/mem, with the rules
of test_memory_aws: credentials only in guarded memory or the environment block) must
find none of the values, their JSON-escaped forms or the binary's base64.

Needs root (reading another process's memory); skipped otherwise.
"""
import http.client
import json
import os
import secrets
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402
from test_memory import is_root  # noqa: E402
from test_memory_aws import RUN, TTL, AwsMemoryBase, escaped  # noqa: E402

TOKEN = "mem-doors-token-" + secrets.token_hex(8)
HDR = "X-Aws-Parameters-Secrets-Token"


@unittest.skipUnless(RUN, "needs boto3, moto_server, openssl, build/smcached and build/smcache")
@unittest.skipUnless(is_root(), "needs root to read another process's memory")
class NoPlaintextThroughTheDoors(AwsMemoryBase, unittest.TestCase):
    TLS = None

    def setUp(self):
        super().setUp()
        self.http_port = aws_moto.free_port()
        self.ep_port = aws_moto.free_port()
        # Values that only a client's request body carries to the agent.
        self.put_value = f'put-"{secrets.token_hex(16)}"\\\n\tend'
        self.created_value = f'created-"{secrets.token_hex(16)}"\\x'
        self.created_name = f"mem-aws/created-{secrets.token_hex(4)}"
        # A write body larger than one evbuffer chain (and than one read from the socket).
        self.big_put = "".join(f'"{secrets.token_hex(24)}"\\\n' for _ in range(700))   # ~38 KB

    def start_agent(self, ca=None):
        aws_extra = "upstream_timeout = 3\nrequest_timeout = 2\nconnect_timeout = 1\nmax_retries = 1\n"
        self.agent = aws_moto.AwsAgent(
            endpoint=self.proxy.url, secret=self.secret_key, token=self.token,
            aws_extra=aws_extra, env={"AWS_TOKEN": TOKEN},
            cache_extra=f"negative_ttl = 0\nttl = {TTL}\nmin_refresh_interval = 0\n"
                        "max_stale = 1h\nmlock = off\nrefresh_idle = 2\n"
                        f"[http]\nlisten = 127.0.0.1:{self.http_port}\n"
                        f"[endpoint]\nlisten = 127.0.0.1:{self.ep_port}\nforward = yes\n"
                        "[access]\nallow_write = user:root *\n")
        self.agent.start()
        return self.agent

    def value_needles(self):
        out = super().value_needles()
        for label, v in (("put value", self.put_value), ("created value", self.created_value)):
            out[f"{label}: value"] = v.encode()
            out[f"{label}: JSON-escaped"] = escaped(v).encode()
        # Every 1 KiB, and the last bytes: a remnant of a freed chain may be short.
        starts = list(range(0, len(self.big_put) - 32, 1024)) + [len(self.big_put) - 32]
        for i, at in enumerate(starts):
            part = self.big_put[at:at + 32]
            out[f"big put, part {i}"] = part.encode()
            out[f"big put, part {i}, JSON-escaped"] = escaped(part).encode()
        return out

    # ---- the HTTP door ----------------------------------------------------------------------

    def door_get(self, conn, key, refresh=False):
        path = f"/secretsmanager/get?secretId={self.names[key]}"
        if refresh:
            path += "&refreshNow=true"
        conn.request("GET", path, headers={HDR: TOKEN})
        r = conn.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200, body[:200])
        doc = json.loads(body)
        if key == "binary":
            import base64
            self.assertEqual(base64.b64decode(doc["SecretBinary"]), self.binary)
        else:
            self.assertEqual(doc["SecretString"], {"string": self.string, "big": self.big}[key])

    def door_traffic(self):
        # Fresh connections: cold reads, then hits.
        for _ in range(2):
            for key in ("string", "big", "binary"):
                conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
                self.door_get(conn, key)
                conn.close()
        # One keep-alive connection: hits and forced refreshes.
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        for i in range(30):
            self.door_get(conn, ("string", "big", "binary")[i % 3], refresh=(i % 10 == 0))
        # A miss.
        conn.request("GET", "/secretsmanager/get?secretId=mem-aws/missing-" + secrets.token_hex(4),
                     headers={HDR: TOKEN})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 400)
        conn.close()

    # ---- the Secrets Manager endpoint ------------------------------------------------------

    def endpoint_client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{self.ep_port}",
                            region_name=aws_moto.REGION, aws_access_key_id="AKIDCALLER0000000001",
                            aws_secret_access_key="caller-secret-key",
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def endpoint_reads(self, c):
        for _ in range(3):
            self.assertEqual(c.get_secret_value(SecretId=self.names["string"])["SecretString"],
                             self.string)
            self.assertEqual(c.get_secret_value(SecretId=self.names["big"])["SecretString"], self.big)
            self.assertEqual(c.get_secret_value(SecretId=self.names["binary"])["SecretBinary"],
                             self.binary)
        batch = c.batch_get_secret_value(SecretIdList=list(self.names.values()))
        got = {v["Name"]: v.get("SecretString", v.get("SecretBinary")) for v in batch["SecretValues"]}
        self.assertEqual(got[self.names["string"]], self.string)
        self.assertEqual(got[self.names["big"]], self.big)
        self.assertEqual(got[self.names["binary"]], self.binary)

    def endpoint_writes(self, c):
        c.put_secret_value(SecretId=self.names["string"], SecretString=self.put_value)
        # Read-your-writes: the agent's next answer is the new value.
        self.assertEqual(c.get_secret_value(SecretId=self.names["string"])["SecretString"],
                         self.put_value)
        self.string = self.put_value
        c.create_secret(Name=self.created_name, SecretString=self.created_value)
        self.assertEqual(c.get_secret_value(SecretId=self.created_name)["SecretString"],
                         self.created_value)
        # Last, so that the scan comes before other traffic reuses the blocks it freed.
        c.put_secret_value(SecretId=self.names["big"], SecretString=self.big_put)

    # ---- the tests --------------------------------------------------------------------------

    # The Unix-socket traffic is test_memory_aws's; the scan's own check stays.
    test_no_plaintext_after_reads_refreshes_errors_and_stale_serving = None

    def test_no_plaintext_after_http_door_reads(self):
        self.start_agent()
        self.door_traffic()
        self.assertGreater(self.agent.stats()["cache_hits"], 0)
        self.assert_no_plaintext("after reads through the HTTP door")

    def test_no_plaintext_after_endpoint_reads_and_forwarded_writes(self):
        self.start_agent()
        c = self.endpoint_client()
        self.endpoint_reads(c)
        self.assert_no_plaintext("after reads through the Secrets Manager endpoint")
        # Right after the writes: later traffic would reuse (and so hide) freed blocks.
        self.endpoint_writes(c)
        self.assert_no_plaintext("after writes passed through the Secrets Manager endpoint")
        self.assertEqual(c.get_secret_value(SecretId=self.names["big"])["SecretString"], self.big_put)
        self.big = self.big_put
        self.endpoint_reads(c)
        self.door_traffic()
        self.assert_no_plaintext("after more reads through both doors")


if __name__ == "__main__":
    unittest.main()
