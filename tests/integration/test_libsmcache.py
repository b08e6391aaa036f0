"""libsmcache against a real agent (tests/tools/smc_client_probe.c drives it): one handle
shared by threads (single reads and pipelined batches), a batch with per-secret errors,
fork, an agent restart under a reading loop; and the complete example of libsmcache(3),
extracted from the man page, compiled against the built library and run.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import smc_harness as h  # noqa: E402

PROBE = os.path.join(h.BUILD, "tests", "smc_client_probe")
RUN = os.access(h.SMCACHED, os.X_OK) and os.access(PROBE, os.X_OK)
SKIP_WHY = "needs build/smcached and build/tests/smc_client_probe"


def secrets():
    return [h.secret(f"lib/s{i}", [h.version(f"ver-{i}", ["AWSCURRENT"], string=f"value {i}")])
            for i in range(5)] + [
        h.secret("lib/json", [h.version("vj", ["AWSCURRENT"],
                                        string='{"db":{"user":"admin","ports":[5432,6432]}}')])]


EXPECT = [f"lib/s{i}=ver-{i}" for i in range(5)]


@unittest.skipUnless(RUN, SKIP_WHY)
class LibTest(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return h.Agent(secrets())

    def probe(self, *args, timeout=120):
        return subprocess.run([PROBE, *args], capture_output=True, text=True, timeout=timeout)

    def test_threads_share_one_handle(self):
        before = self.agent.stats()
        r = self.probe("threads", self.agent.socket, "8", "200", *EXPECT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # 8 threads x 200 iterations; every 10th is a batch of all 5 ids.
        self.assertEqual(r.stdout.strip(), f"ok {8 * (180 + 20 * 5)}")
        after = self.agent.stats()
        accepted = [k for k in after if "accept" in k and k in before]
        for k in accepted:   # a pool, not a connection per call
            self.assertLess(after[k] - before[k], 100, k)

    def test_batch_with_per_secret_errors(self):
        r = self.probe("batch", self.agent.socket, "lib/s1", "lib/none", "lib/s3")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.splitlines()
        self.assertEqual(out[0], "ok ver-1")
        self.assertTrue(out[1].startswith("err 1 "), out)    # SMC_ERR_NOT_FOUND
        self.assertEqual(out[2], "ok ver-3")

    def test_fork(self):
        r = self.probe("fork", self.agent.socket, "lib/s2=ver-2")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ok"), r.stdout + r.stderr)

    def test_man_page_example_compiles_and_runs(self):
        with open(os.path.join(h.ROOT, "man", "libsmcache.3")) as f:
            page = f.read()
        m = re.search(r'^\.\\" example-begin\n(.*?)^\.\\" example-end$', page, re.S | re.M)
        self.assertIsNotNone(m)
        src = m.group(1).replace("\\e", "\\").replace("\\-", "-")
        d = tempfile.mkdtemp(prefix="smc-man-")
        try:
            with open(os.path.join(d, "example.c"), "w") as f:
                f.write(src)
            exe = os.path.join(d, "example")
            nm = subprocess.run(["nm", os.path.join(h.BUILD, "libsmcache.a")], capture_output=True,
                                text=True, errors="replace").stdout
            san = ["-fsanitize=address,undefined"] if "__asan_" in nm else []   # make asan
            cc = subprocess.run(["cc", *san, "-std=c11", "-Wall", "-Wextra", "-Werror",
                                 "-I" + os.path.join(h.ROOT, "client"), os.path.join(d, "example.c"),
                                 "-o", exe, "-L" + h.BUILD, "-Wl,-rpath," + h.BUILD, "-lsmcache"],
                                capture_output=True, text=True)
            self.assertEqual(cc.returncode, 0, cc.stderr)
            env = dict(os.environ, SMCACHE_SOCKET=self.agent.socket)
            r = subprocess.run([exe, "lib/json", "db.user", "lib/s1", "lib/s2"], capture_output=True,
                               text=True, env=env)
            self.assertEqual((r.returncode, r.stdout), (0, "admin\n"), r.stderr)
            r = subprocess.run([exe, "lib/json", "db.ports.1"], capture_output=True, text=True, env=env)
            self.assertEqual((r.returncode, r.stdout), (0, "6432\n"), r.stderr)
            r = subprocess.run([exe, "lib/json", "db.user", "lib/none"], capture_output=True,
                               text=True, env=env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("lib/none", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


@unittest.skipUnless(RUN, SKIP_WHY)
class RestartTest(unittest.TestCase):
    def test_reads_survive_an_agent_restart(self):
        with h.Agent(secrets()) as agent:
            out = {}

            def loop():
                out["r"] = subprocess.run([PROBE, "loop", agent.socket, "lib/s0", "3"],
                                          capture_output=True, text=True, timeout=60)
            t = threading.Thread(target=loop)
            t.start()
            time.sleep(0.7)
            agent.stop()
            time.sleep(0.5)          # gone for a while: calls wait, they do not fail
            agent.start()
            t.join(60)
            r = out["r"]
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, r"reads=\d+ errors=0 ")


if __name__ == "__main__":
    unittest.main()
