"""An unprivileged local user against the TCP doors ([http] listen, [endpoint] listen).

On loopback TCP the agent learns who is calling from sock_diag: the uid owning the
client's socket. These tests play the user "nobody" (setpriv) against rules that let root
read and write everything and nobody only app/*.

- The upstream budget ([limits] upstream_per_second_per_uid = 20, upstream_burst_per_uid
  = 200, the defaults) bounds the Secrets Manager calls one user's requests cause through
  both TCP doors as through the Unix socket: misses with random names (HTTP door
  GET, endpoint GetSecretValue, DescribeSecret, ListSecretVersionIds), BatchGetSecretValue
  with 20 random ids each, forced refreshes (refreshNow=true, refreshes_per_minute_per_uid);
  another user is served meanwhile.
- Requests that never finish arriving: 600 connections to the endpoint each holding a
  250 KB body short of its Content-Length (under the 256 KiB a body may have) made the agent
  hold 200 MB until they left, and a second request trickled on a keep-alive connection
  (a byte every 0.3 s resets evhttp's read timeout) was never closed. The bytes of
  requests still arriving are bounded in total (the longest-waiting are shut first) and
  every request, not only a connection's first, must arrive within idle_timeout; a client
  meanwhile is served.
- 1,000 silent sockets on the HTTP door and the endpoint do not keep another user out;
  deep (200,000 '[') and wide (18,000 members; 12,000 times the same one) JSON bodies are
  answered at once.
- The write rules ([access] allow_write = user:nobody app/*) judge the secret a forwarded
  write names as Secrets Manager will read it: a body with SecretId twice (cJSON takes the
  first, the service's parser the last), or with both SecretId and Name (CreateSecret reads
  Name and ignores SecretId), cannot write root's secret.
- A client that closes its socket right after sending a request: once the agent has
  ACKed the FIN, the kernel turns the orphaned socket into a TIME_WAIT mini socket, which
  sock_diag reports with uid 0. An agent busy for that long (a SIGSTOP here stands for
  a long loop iteration on a loaded host) must not take such a caller for root: not for
  a read through the HTTP door (root's refresh budget, root's audit lines), and not for
  a write passed upstream through the Secrets Manager endpoint (peer mode checks the
  signature's form only; the uid is the whole authority).

Needs root (setpriv to nobody, SIGSTOP of the agent); skipped otherwise.
"""
import base64
import http.client
import json
import os
import pwd
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_moto  # noqa: E402
import smc_harness as h  # noqa: E402
from test_memory import under_asan  # noqa: E402

TOKEN = "attacker-test-token-0123456789"
HDR = "X-Aws-Parameters-Secrets-Token"
SECRETS = [h.secret("app/db", [h.version("v1", ["AWSCURRENT"], string="app-value")]),
           h.secret("root/only", [h.version("r1", ["AWSCURRENT"], string="root-value")])]
RULES = "allow = user:root *\nallow = user:nobody app/*\n"
SETPRIV = shutil.which("setpriv")


def can_be_nobody():
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return os.geteuid() == 0 and SETPRIV is not None


def as_nobody(script, *args, timeout=60):
    """Runs python code as nobody (no groups); returns the CompletedProcess."""
    pw = pwd.getpwnam("nobody")
    return subprocess.run([SETPRIV, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                           "--clear-groups", sys.executable, "-I", "-c", script, *args],
                          capture_output=True, text=True, timeout=timeout)


# Connects, sends argv[2] (bytes as latin-1 text) to port argv[1] and closes at once,
# without reading: the socket is orphaned with the request on its way.
SEND_AND_CLOSE = ("import socket,sys\n"
                  "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                  "s.sendall(sys.argv[2].encode('latin-1'))\n"
                  "s.close()\n")


class Stopped:
    """The agent stopped (SIGSTOP) for the block and `hold` seconds after it: long
    enough for the kernel to ACK a client's FIN and turn its socket into TIME_WAIT."""

    def __init__(self, agent, hold=0.5):
        self.pid, self.hold = agent.pid(), hold

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        time.sleep(self.hold)
        os.kill(self.pid, signal.SIGCONT)
        return False


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    return predicate()


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
@unittest.skipUnless(can_be_nobody(), "needs root and setpriv to act as nobody")
class ClosedClientIsNotRoot(unittest.TestCase):
    """A caller whose socket is closed by the time the agent asks sock_diag."""

    def test_http_door_read_from_a_closed_socket_is_not_roots(self):
        port = aws_moto.free_port()
        tmp = tempfile.mkdtemp(prefix="smc-attack-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        audit = os.path.join(tmp, "audit.log")
        extra = (f"[http]\nlisten = 127.0.0.1:{port}\n[access]\n{RULES}"
                 f"[audit]\nlevel = all\nfile = {audit}\n")
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}) as a:
            req = (f"GET /secretsmanager/get?secretId=root/only&refreshNow=true HTTP/1.1\r\n"
                   f"Host: localhost:{port}\r\n{HDR}: {TOKEN}\r\n\r\n")
            # Control: nobody reading on an open connection is denied, as nobody.
            r = as_nobody("import socket,sys\n"
                          "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                          "s.sendall(sys.argv[2].encode());print(s.recv(100).decode())\n",
                          str(port), req)
            self.assertIn("403", r.stdout, r.stderr)
            with Stopped(a):
                r = as_nobody(SEND_AND_CLOSE, str(port), req)
                self.assertEqual(r.returncode, 0, r.stderr)
            # Both requests reached a decision.
            def decided():
                with open(audit) as f:
                    got = [l for l in f.read().splitlines()
                           if 'id="root/only"' in l and "door=http" in l]
                return got if len(got) >= 2 else None
            lines = wait_for(decided) or []
            self.assertEqual(len(lines), 2, lines)
            self.assertNotIn("decision=allowed", lines[1],
                             "nobody's request from a closed socket was judged as root's")
            self.assertNotIn(" uid=0 ", lines[1])


@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(),
                     "needs boto3, moto_server and build/smcached")
@unittest.skipUnless(can_be_nobody(), "needs root and setpriv to act as nobody")
class ClosedClientCannotWriteAsRoot(unittest.TestCase):
    def test_forwarded_write_from_a_closed_socket_is_refused(self):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        moto = aws_moto.Moto().start()
        self.addCleanup(moto.stop)
        sm = moto.client()
        sm.create_secret(Name="root/db", SecretString="root-original")
        port = aws_moto.free_port()
        with aws_moto.AwsAgent(endpoint=moto.url, cache_extra=(
                f"negative_ttl = 0\n[endpoint]\nlisten = 127.0.0.1:{port}\nforward = yes\n"
                "[access]\nallow = user:root *\nallow_write = user:root *\n")) as a:
            def raw_put(value):
                body = json.dumps({"SecretId": "root/db", "SecretString": value})
                req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body,
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "secretsmanager.PutSecretValue"})
                SigV4Auth(Credentials("AKIDNOBODY0000000001", "any"), "secretsmanager",
                          aws_moto.REGION).add_auth(req)
                head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
                return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                        f"Content-Length: {len(body)}\r\n\r\n{body}")
            # Control: nobody's write on an open connection is refused.
            r = as_nobody("import socket,sys\n"
                          "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                          "s.sendall(sys.argv[2].encode());print(s.recv(4096).decode())\n",
                          str(port), raw_put("nobody-was-here-1"))
            self.assertIn("AccessDeniedException", r.stdout, r.stderr)
            with Stopped(a):
                r = as_nobody(SEND_AND_CLOSE, str(port), raw_put("nobody-was-here-2"))
                self.assertEqual(r.returncode, 0, r.stderr)
            # The agent has handled it once it answers again.
            a.stats()
            time.sleep(1.0)
            self.assertEqual(sm.get_secret_value(SecretId="root/db")["SecretString"],
                             "root-original", "nobody wrote root's secret through the agent")
            self.assertNotRegex(a.read_log(), r"decision=allowed.*PutSecretValue|"
                                              r"PutSecretValue.*decision=allowed")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def closed_within(sock, seconds):
    """True when the peer closes sock within seconds (reading whatever it sends)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            try:
                if sock.recv(65536) == b"":
                    return True
            except OSError:
                return True
    return False


@unittest.skipUnless(h.have_binaries(), "needs build/smcached")
class IncompleteRequestsAreBounded(unittest.TestCase):
    def test_bodies_that_never_finish_do_not_grow_the_agent(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2048:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
            except (ValueError, OSError):
                self.skipTest("needs 2,048 descriptors")
        port = aws_moto.free_port()
        extra = f"[endpoint]\nlisten = 127.0.0.1:{port}\n"
        with h.Agent(SECRETS, config_extra=extra) as a:
            base = rss_mib(a.pid())
            head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Content-Type: application/x-amz-json-1.1\r\n"
                    "X-Amz-Target: secretsmanager.PutSecretValue\r\n"
                    "Content-Length: 262000\r\n\r\n").encode()
            body = b"x" * 250000
            socks = []
            self.addCleanup(lambda: [s.close() for s in socks])
            for _ in range(600):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.setblocking(False)
                data = head + body
                try:
                    while data:
                        r, w, _ = select.select([], [s], [], 1.0)
                        if not w:
                            break           # the agent stopped reading this one
                        data = data[s.send(data):]
                except OSError:
                    pass                    # shut by the agent
                socks.append(s)
            time.sleep(1.0)
            grown = rss_mib(a.pid()) - base
            # A client with a whole request is served meanwhile.
            headers, payload = signed(port, "GetSecretValue", {"SecretId": "app/db"})
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/", body=payload, headers=headers)
            r = c.getresponse()
            self.assertEqual((r.status, json.loads(r.read())["SecretString"]), (200, "app-value"))
            c.close()
            print(f"\n  600 unfinished 250 KB bodies: the agent grew by {grown:.0f} MiB",
                  file=sys.stderr)
            if under_asan(a.pid()) or h.WRAPPER:
                return      # AddressSanitizer's quarantine (256 MiB) or valgrind's keep freed blocks
            self.assertLess(grown, 64, f"the agent grew by {grown:.0f} MiB")

    def test_a_thousand_silent_sockets_do_not_keep_others_out(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2048:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
            except (ValueError, OSError):
                self.skipTest("needs 2,048 descriptors")
        if not can_be_nobody():
            self.skipTest("needs root and setpriv to act as nobody")
        port, ep = aws_moto.free_port(), aws_moto.free_port()
        extra = f"[http]\nlisten = 127.0.0.1:{port}\n[endpoint]\nlisten = 127.0.0.1:{ep}\n"
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}):
            socks = []
            self.addCleanup(lambda: [s.close() for s in socks])
            for i in range(1000):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", port if i % 2 else ep),
                                                          timeout=5))
                except OSError:
                    break
            time.sleep(0.5)
            r = as_nobody("import http.client,sys\n"
                          "c=http.client.HTTPConnection('127.0.0.1',int(sys.argv[1]),timeout=10)\n"
                          "c.request('GET','/secretsmanager/get?secretId=app/db',"
                          "headers={sys.argv[2]:sys.argv[3]})\n"
                          "r=c.getresponse();print(r.status)\n", str(port), HDR, TOKEN)
            self.assertEqual(r.stdout.strip(), "200", r.stderr)

    def test_deep_and_wide_json_bodies_are_answered_at_once(self):
        port = aws_moto.free_port()
        with h.Agent(SECRETS, config_extra=f"[endpoint]\nlisten = 127.0.0.1:{port}\n") as a:
            wide = "{" + ",".join(f'"k{i}":{i}' for i in range(18000)) + ',"SecretId":"app/db"}'
            same = "{" + ",".join('"SecretId":"app/db"' for _ in range(12000)) + "}"
            cases = [("[" * 200000, "SerializationException"),
                     ('{"SecretId":' + "[" * 100000, "SerializationException"),
                     (wide, None),
                     (same, "SerializationException")]
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for body, want in cases:
                self.assertLess(len(body), 256 * 1024)
                headers, payload = signed_raw(port, "GetSecretValue", body.encode())
                t0 = time.monotonic()
                c.request("POST", "/", body=payload, headers=headers)
                r = c.getresponse()
                doc = json.loads(r.read())
                took = time.monotonic() - t0
                if want is None:
                    self.assertEqual((r.status, doc.get("SecretString")), (200, "app-value"))
                else:
                    self.assertEqual((r.status, doc.get("__type")), (400, want))
                self.assertLess(took, 2.0, f"{len(body)} bytes took {took:.2f} s")
            c.close()
            self.assertIsNotNone(a.stats())

    def test_a_keepalive_connection_cannot_trickle_its_next_request(self):
        port = aws_moto.free_port()
        extra = f"[http]\nlisten = 127.0.0.1:{port}\nidle_timeout = 2\n"
        with h.Agent(SECRETS, config_extra=extra, env={"AWS_TOKEN": TOKEN}):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.addCleanup(s.close)
            s.sendall(f"GET /secretsmanager/get?secretId=app/db HTTP/1.1\r\n"
                      f"Host: localhost:{port}\r\n{HDR}: {TOKEN}\r\n\r\n".encode())
            self.assertIn(b"200 OK", s.recv(65536))
            s.sendall(b"GET /secretsmanager/get?secretId=app/db HTTP/1.1\r\n")
            t0 = time.monotonic()
            closed = False
            while time.monotonic() - t0 < 8 and not closed:
                try:
                    s.sendall(b"X")
                except OSError:
                    closed = True
                    break
                closed = closed_within(s, 0.3)
            took = time.monotonic() - t0
            self.assertTrue(closed, "a second request trickled for 8 s kept its connection")
            self.assertLess(took, 4.5)


@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(),
                     "needs boto3, moto_server and build/smcached")
@unittest.skipUnless(can_be_nobody(), "needs root and setpriv to act as nobody")
class WriteRulesSeeWhatTheServiceSees(unittest.TestCase):
    def test_a_write_body_cannot_name_one_secret_to_the_rules_and_another_upstream(self):
        moto = aws_moto.Moto().start()
        self.addCleanup(moto.stop)
        sm = moto.client()
        sm.create_secret(Name="app/x", SecretString="app-original")
        sm.create_secret(Name="root/db", SecretString="root-original")
        port = aws_moto.free_port()
        with aws_moto.AwsAgent(endpoint=moto.url, cache_extra=(
                f"negative_ttl = 0\n[endpoint]\nlisten = 127.0.0.1:{port}\nforward = yes\n"
                "[access]\nallow = user:root *\nallow = user:nobody app/*\n"
                "allow_write = user:root *\nallow_write = user:nobody app/*\n")):
            def send_as_nobody(target, raw_body):
                from botocore.auth import SigV4Auth
                from botocore.awsrequest import AWSRequest
                from botocore.credentials import Credentials
                req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=raw_body,
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "secretsmanager." + target})
                SigV4Auth(Credentials("AKIDNOBODY0000000001", "any"), "secretsmanager",
                          aws_moto.REGION).add_auth(req)
                script = ("import http.client,json,sys\n"
                          "a=json.loads(sys.argv[1])\n"
                          f"c=http.client.HTTPConnection('127.0.0.1',{port},timeout=10)\n"
                          "c.request('POST','/',body=a['body'].encode(),headers=a['headers'])\n"
                          "r=c.getresponse();print(r.status);print(r.read().decode())\n")
                r = as_nobody(script, json.dumps({"body": raw_body,
                                                  "headers": dict(req.headers.items())}))
                self.assertEqual(r.returncode, 0, r.stderr)
                return r.stdout
            # Control: nobody may write app/x, and may not write root/db.
            out = send_as_nobody("PutSecretValue", json.dumps(
                {"SecretId": "app/x", "SecretString": "app-by-nobody"}))
            self.assertTrue(out.startswith("200"), out)
            out = send_as_nobody("PutSecretValue", json.dumps(
                {"SecretId": "root/db", "SecretString": "pwned-0"}))
            self.assertIn("AccessDeniedException", out)
            # SecretId twice: the rules must not see app/x while the service sees root/db.
            send_as_nobody("PutSecretValue",
                           '{"SecretId": "app/x", "SecretId": "root/db", "SecretString": "pwned-1"}')
            self.assertEqual(sm.get_secret_value(SecretId="root/db")["SecretString"],
                             "root-original", "a duplicate SecretId wrote root's secret")
            # CreateSecret names its secret with Name; a SecretId beside it decides nothing.
            send_as_nobody("CreateSecret",
                           '{"SecretId": "app/x", "Name": "root/planted", "SecretString": "pwned-2"}')
            names = [x["Name"] for x in sm.list_secrets()["SecretList"]]
            self.assertNotIn("root/planted", names, "nobody created a secret under root/")
            send_as_nobody("CreateSecret",
                           '{"Name": "app/new", "Name": "root/planted2", "SecretString": "pwned-3"}')
            names = [x["Name"] for x in sm.list_secrets()["SecretList"]]
            self.assertNotIn("root/planted2", names, "a duplicate Name created root's secret")


UPSTREAM_RATE, UPSTREAM_BURST, REFRESHES_PER_MINUTE = 20, 200, 60


def signed(port, target, doc):
    """(headers, body) of a SigV4-signed AWS JSON 1.1 request to the agent's endpoint."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = json.dumps(doc).encode()
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager." + target})
    SigV4Auth(Credentials("AKIDCALLER0000000001", "caller-secret"), "secretsmanager",
              aws_moto.REGION).add_auth(req)
    return dict(req.headers.items()), body


def signed_raw(port, target, body):
    """signed() for a body given as bytes, whatever they hold."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager." + target})
    SigV4Auth(Credentials("AKIDCALLER0000000001", "caller-secret"), "secretsmanager",
              aws_moto.REGION).add_auth(req)
    return dict(req.headers.items()), body


def flood(requests, port, threads=4):
    """Sends requests (method, path, headers, body) over `threads` keep-alive connections;
    returns ([(status, body bytes)], seconds)."""
    parts = [requests[i::threads] for i in range(threads)]
    out = [[] for _ in range(threads)]
    start = time.monotonic()

    def run(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for method, path, headers, body in parts[i]:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            out[i].append((r.status, r.read()))
        c.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    return [x for part in out for x in part], time.monotonic() - start


@unittest.skipUnless(aws_moto.have_moto() and h.have_binaries(),
                     "needs boto3, moto_server and build/smcached")
class DoorsSpendTheUpstreamBudget(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = aws_moto.Moto().start()
        cls.sm = cls.moto.client()
        cls.sm.create_secret(Name="budget/hot", SecretString="hot-value")

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def setUp(self):
        self.proxy = aws_moto.FaultProxy(self.moto.port).start()
        self.addCleanup(self.proxy.stop)
        self.http_port, self.ep_port = aws_moto.free_port(), aws_moto.free_port()
        self.agent = aws_moto.AwsAgent(
            endpoint=self.proxy.url, env={"AWS_TOKEN": TOKEN},
            cache_extra=(f"negative_ttl = 0\nrefresh_ahead = 0\nmin_refresh_interval = 0\n"
                         f"[http]\nlisten = 127.0.0.1:{self.http_port}\n"
                         f"[endpoint]\nlisten = 127.0.0.1:{self.ep_port}\n"),
            agent_extra="socket_mode = 0666\n")
        os.chmod(self.agent.dir, 0o755)
        self.agent.start()
        self.addCleanup(self.agent.close)
        self.addCleanup(self.agent.stop)

    def door_get(self, secret_id, refresh=False):
        path = f"/secretsmanager/get?secretId={secret_id}" + ("&refreshNow=true" if refresh else "")
        return ("GET", path, {HDR: TOKEN}, None)

    def sdk(self, target, doc):
        headers, body = signed(self.ep_port, target, doc)
        return ("POST", "/", headers, body)

    def assert_bounded(self, what, ops, replies, elapsed, requests, limit_status):
        calls = sum(self.proxy.count(op) for op in ops)
        bound = UPSTREAM_BURST + UPSTREAM_RATE * elapsed + 5
        limited = [b for st, b in replies if st == limit_status and b"ThrottlingException" in b]
        print(f"\n  {what}: {calls} upstream calls for {requests} in {elapsed:.1f} s"
              f" (bound {bound:.0f}), {len(limited)} throttled", file=sys.stderr)
        self.assertLessEqual(calls, bound, f"{what}: {calls} upstream calls in {elapsed:.1f} s")
        self.assertGreater(len(limited), 0, f"{what}: nothing throttled")
        self.assertIn(b"upstream_per_second_per_uid", limited[0])

    def other_uid_is_served(self):
        """nobody's cold read through the HTTP door while root's budget is spent."""
        if not can_be_nobody():
            return
        name = f"budget/other-{uuid.uuid4().hex[:8]}"
        self.sm.create_secret(Name=name, SecretString="other-value")
        r = as_nobody("import http.client,sys\n"
                      "c=http.client.HTTPConnection('127.0.0.1',int(sys.argv[1]),timeout=10)\n"
                      "c.request('GET','/secretsmanager/get?secretId='+sys.argv[2],"
                      "headers={sys.argv[3]:sys.argv[4]})\n"
                      "r=c.getresponse();print(r.status);print(r.read().decode())\n",
                      str(self.http_port), name, HDR, TOKEN)
        self.assertEqual(r.stdout.split("\n")[0], "200", r.stdout + r.stderr)
        self.assertIn("other-value", r.stdout)

    def test_http_door_misses(self):
        n = 1200
        reqs = [self.door_get(f"budget/missing-{uuid.uuid4()}") for _ in range(n)]
        replies, elapsed = flood(reqs, self.http_port)
        self.assert_bounded("HTTP door misses", ["GetSecretValue"], replies, elapsed, n, 429)
        self.other_uid_is_served()

    def test_http_door_forced_refreshes(self):
        n = 300
        replies, elapsed = flood([self.door_get("budget/hot", refresh=True) for _ in range(n)],
                                 self.http_port)
        calls = self.proxy.count("GetSecretValue")
        # The bucket holds a minute's refreshes and refills one a second.
        bound = REFRESHES_PER_MINUTE + REFRESHES_PER_MINUTE / 60 * elapsed + 1
        self.assertLessEqual(calls, bound, f"{calls} refreshes upstream in {elapsed:.1f} s")
        self.assertGreaterEqual(sum(1 for st, _ in replies if st == 429), n - bound)

    def test_endpoint_get_misses(self):
        n = 1200
        reqs = [self.sdk("GetSecretValue", {"SecretId": f"budget/missing-{uuid.uuid4()}"})
                for _ in range(n)]
        replies, elapsed = flood(reqs, self.ep_port)
        self.assert_bounded("endpoint GetSecretValue misses", ["GetSecretValue"], replies,
                            elapsed, n, 400)
        self.other_uid_is_served()

    def test_endpoint_describe_and_list_versions_misses(self):
        n = 1200
        reqs = [self.sdk("DescribeSecret" if i % 2 else "ListSecretVersionIds",
                         {"SecretId": f"budget/missing-{uuid.uuid4()}"}) for i in range(n)]
        replies, elapsed = flood(reqs, self.ep_port)
        self.assert_bounded("endpoint DescribeSecret/ListSecretVersionIds misses",
                            ["DescribeSecret", "ListSecretVersionIds"], replies, elapsed, n, 400)

    def test_endpoint_batches_of_twenty_random_ids(self):
        n = 100
        reqs = [self.sdk("BatchGetSecretValue",
                         {"SecretIdList": [f"budget/missing-{uuid.uuid4()}" for _ in range(20)]})
                for _ in range(n)]
        replies, elapsed = flood(reqs, self.ep_port)
        calls = self.proxy.count("GetSecretValue") + self.proxy.count("BatchGetSecretValue")
        bound = UPSTREAM_BURST + UPSTREAM_RATE * elapsed + 5
        print(f"\n  endpoint batches: {calls} upstream calls for {n * 20} ids in {elapsed:.1f} s"
              f" (bound {bound:.0f})", file=sys.stderr)
        self.assertLessEqual(calls, bound)
        self.assertTrue(any(b"ThrottlingException" in b for _, b in replies))
        self.other_uid_is_served()


if __name__ == "__main__":
    unittest.main()
