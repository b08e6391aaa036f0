"""smcached's memory, seen from outside: no plaintext secret left behind, memory
locked by policy, and the process not dumpable.

The scan reads every readable mapping of the running agent through
/proc/PID/mem after it served secrets, and fails on any copy of a value: the
cache keeps values sealed, and every buffer a value passed through (the file
backend's read buffer and cJSON strings, the reply scratch and the frames
queued on sockets) must be wiped. The values are random markers made when the
test runs, so nothing else in memory can hold them by chance.

Needs root (reading another process's memory, locking memory, switching
users); skipped otherwise.
"""
import base64
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import unittest

import smc_harness as h

HUGE_MAPPING = 1 << 30   # only AddressSanitizer's shadow regions are this large
CHUNK = 1 << 20


def is_root():
    return os.geteuid() == 0


def maps_of(pid):
    """[(start, end, perms, description)] from /proc/PID/maps."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return out


def under_asan(pid):
    """Whether the running agent is an AddressSanitizer build (mlock is off there by design)."""
    if any("libasan" in m[3] or "libclang_rt.asan" in m[3] for m in maps_of(pid)):
        return True
    return os.path.basename(os.path.normpath(h.BUILD)).endswith("asan")


def scan_memory(pid, needles):
    """Finds needles (name -> bytes) in every readable mapping of pid.

    Returns (hits, scanned_bytes, skipped) where hits lists
    (name, address, mapping, context-bytes)."""
    hits, skipped, scanned = [], [], 0
    overlap = max(len(n) for n in needles.values()) - 1
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end, perms, desc in maps_of(pid):
            if "r" not in perms or desc in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            if end - start >= HUGE_MAPPING:
                skipped.append((start, end, perms, desc))
                continue
            addr, tail = start, b""
            while addr < end:
                n = min(CHUNK, end - addr)
                try:
                    mem.seek(addr)
                    data = mem.read(n)
                except OSError:   # EIO: a page that cannot be read (guard, unmapped meanwhile)
                    data = b""
                if not data:
                    tail = b""
                    addr += n
                    continue
                scanned += len(data)
                window = tail + data
                base = addr - len(tail)
                for name, needle in needles.items():
                    for m in re.finditer(re.escape(needle), window):
                        at = base + m.start()
                        ctx = window[max(0, m.start() - 32):m.end() + 32]
                        hits.append((name, at, f"{start:x}-{end:x} {perms} {desc}", ctx))
                tail = data[-overlap:] if overlap > 0 else b""
                addr += len(data)
    # A match fully inside the overlap is found twice; keep one per address.
    seen, unique = set(), []
    for hit in hits:
        if (hit[0], hit[1]) not in seen:
            seen.add((hit[0], hit[1]))
            unique.append(hit)
    return unique, scanned, skipped


def status_field(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return None


def vmlck_kib(pid):
    return int(status_field(pid, "VmLck").split()[0])


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
@unittest.skipUnless(is_root(), "needs root to read another process's memory")
class NoPlaintextInMemory(unittest.TestCase):
    def setUp(self):
        self.marker = secrets.token_hex(24)                  # a SecretString
        self.bin_hex = secrets.token_hex(40)
        self.binary = bytes.fromhex(self.bin_hex)            # a SecretBinary
        self.big = secrets.token_hex(30000)                  # 60000 bytes, near the maximum
        self.arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mem/string-Mk7Qp2"
        self.agent = None

    def start_agent(self, config_extra=""):
        self.agent = h.Agent([
            h.secret("mem/string", [
                h.version("v1", ["AWSPREVIOUS"], string="old-" + self.marker[::-1]),
                h.version("v2", ["AWSCURRENT"], string=self.marker),
            ], arn=self.arn),
            h.secret("mem/binary", [h.version("b1", ["AWSCURRENT"], binary=self.binary)]),
            h.secret("mem/big", [h.version("g1", ["AWSCURRENT"], string=self.big)]),
        ], config_extra=config_extra)
        self.agent.start()
        # The socket accepts before the backend has read the file at start-up: wait
        # for an answer (the event loop runs), or a scan could catch that read.
        self.assertEqual(self.agent.cli("ping").returncode, 0)

    def tearDown(self):
        if self.agent is None:
            return
        try:
            self.agent.stop()
        finally:
            self.agent.close()

    def needles(self):
        b64 = base64.b64encode(self.binary)
        return {
            "string marker": self.marker.encode(),
            "old version's value": self.marker[::-1].encode(),
            "binary value": self.binary,
            "binary value, hex": self.bin_hex.encode(),
            "binary value, base64 (file form)": b64,
            "big value, start": self.big[:48].encode(),
            "big value, middle": self.big[30000:30048].encode(),
            "big value, end": self.big[-48:].encode(),
        }

    def read_everything(self):
        a = self.agent
        for _ in range(3):
            p = a.cli("get", "mem/string")
            self.assertEqual((p.returncode, p.stdout), (0, self.marker.encode()), p.stderr)
            p = a.cli("get", "mem/binary")
            self.assertEqual((p.returncode, p.stdout), (0, self.binary), p.stderr)
            p = a.cli("get", self.arn, "--version-stage", "AWSPREVIOUS", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(self.marker[::-1].encode(), p.stdout)
        # Raw protocol: pipelined on one connection, and from several at once.
        with a.connect() as s:
            s.sendall(b"".join(h.get_frame(sid, request_id=i, **kw) for i, (sid, kw) in enumerate([
                ("mem/string", {}), ("mem/big", {}), ("mem/binary", {}),
                ("mem/string", {"version_id": "v1"}), (self.arn[:-7], {"stage": "AWSCURRENT"}),
            ])))
            replies = {r.request_id: r for r in (h.read_reply(s) for _ in range(5))}
        self.assertEqual(replies[0].get(h.T_SECRET_STRING), self.marker.encode())
        self.assertEqual(replies[1].get(h.T_SECRET_STRING), self.big.encode())
        self.assertEqual(replies[2].get(h.T_SECRET_BINARY), self.binary)
        self.assertEqual(replies[3].get(h.T_SECRET_STRING), ("old-" + self.marker[::-1]).encode())
        self.assertEqual(replies[4].get(h.T_SECRET_STRING), self.marker.encode())
        errors = []

        def client(n):
            try:
                with a.connect() as s:
                    for i in range(5):
                        sid = ("mem/string", "mem/big", "mem/binary")[(n + i) % 3]
                        s.sendall(h.get_frame(sid, request_id=i))
                        if h.read_reply(s).status != h.ST_OK:
                            errors.append((n, i))
            except OSError as exc:
                errors.append((n, repr(exc)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        # A slow reader: more replies than its socket takes, so the agent must
        # queue the rest (and wipe it once written).
        many = b"".join(h.get_frame(("mem/big", "mem/string", "mem/binary")[i % 3], request_id=i)
                        for i in range(30))
        with a.connect() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(many)
            time.sleep(0.3)
            for i in range(30):
                r = h.read_reply(s)
                self.assertEqual((r.status, r.request_id), (h.ST_OK, i))
                if i % 3 == 0:
                    self.assertEqual(r.get(h.T_SECRET_STRING), self.big.encode())
        # Clients that leave before reading: replies queued for them must be wiped too.
        for _ in range(3):
            with a.connect() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(many)
                time.sleep(0.2)
        with a.connect() as s:
            s.sendall(h.get_frame("mem/big", request_id=1) + h.get_frame("mem/string", request_id=2))
        # DESCRIBE reads the file as well (and carries no value).
        self.assertEqual(a.cli("describe", "mem/string").returncode, 0)

    def assert_no_plaintext(self):
        pid = self.agent.pid()
        hits, scanned, skipped = scan_memory(pid, self.needles())
        # The scan saw real memory: the heap at least, some megabytes in all.
        self.assertGreater(scanned, 1 << 20)
        if not under_asan(pid):
            self.assertEqual(skipped, [], "unexpected huge mappings were not scanned")
        if hits:
            lines = [f"{name} at 0x{at:x} in [{mapping}]: ...{ctx!r}..." for name, at, mapping, ctx in hits]
            self.fail("plaintext secret found in smcached's memory:\n" + "\n".join(lines[:20]))

    def test_values_do_not_stay_in_memory(self):
        self.start_agent()
        # Right after start-up: the file was read and validated once.
        self.assert_no_plaintext()
        self.read_everything()
        time.sleep(0.5)
        self.assert_no_plaintext()
        # Hits now (answered from the sealed cache), then scan again.
        self.read_everything()
        time.sleep(0.5)
        self.assert_no_plaintext()
        # And it still answers correctly after being read.
        self.assertEqual(self.agent.cli("get", "mem/string").stdout, self.marker.encode())
        r = self.agent.request(h.get_frame("mem/binary"))
        self.assertEqual(r.get(h.T_SECRET_BINARY), self.binary)
        stats = _stats(self.agent)
        self.assertGreater(stats["cache_hits"], 0)
        self.assertEqual(stats["cache_entries"], 4)

    def test_lingering_replies_are_wiped_once_idle(self):
        # body_linger_ms keeps rendered replies past their loop pass, but never
        # past the closing of the sealing key: once the agent is idle (the key
        # closes a few ms after the last unseal) nothing is left, even with a
        # linger of a whole second.
        self.start_agent("[cache]\nbody_linger_ms = 1000\n")
        self.read_everything()
        self.read_everything()
        time.sleep(0.3)
        self.assert_no_plaintext()
        self.assertEqual(self.agent.cli("get", "mem/string").stdout, self.marker.encode())

    def test_refreshes_and_stale_serving_leave_nothing(self):
        # ttl 1: hot secrets are refreshed in the background (DescribeSecret,
        # then values not held), and once the file breaks, served stale.
        # Refreshes go on in the background all the while and each one reads
        # the whole file, markers included, for an instant: the scan comes only
        # once the file is broken, so it cannot catch a refresh in the act.
        self.start_agent("[cache]\nttl = 1\n")
        self.read_everything()
        for _ in range(3):
            time.sleep(0.5)
            for sid in ("mem/string", "mem/binary", "mem/big"):   # kept hot
                self.assertEqual(self.agent.request(h.get_frame(sid)).status, h.ST_OK)
        s = _stats(self.agent)
        self.assertGreater(s["upstream_describe_ok"], 0, s)
        broken = self.agent.secrets_path + ".broken"
        with open(broken, "w") as f:
            f.write("{ broken")
        os.replace(broken, self.agent.secrets_path)
        time.sleep(1.2)
        self.assertEqual(self.agent.cli("get", "mem/string").stdout, self.marker.encode())
        r = self.agent.request(h.get_frame("mem/big"))
        self.assertEqual((r.status, r.get(h.T_SECRET_STRING)), (h.ST_OK, self.big.encode()))
        self.assertGreater(_stats(self.agent)["cache_stale_serves"], 0)
        time.sleep(0.5)
        self.assert_no_plaintext()

    def test_the_scan_finds_what_is_there(self):
        # The scanner itself must be able to fail: a secret id the agent keeps
        # in plaintext (ids are not secret) is found, as is a marker a client
        # leaves in a half-sent frame in the agent's input buffer.
        probe = "probe-" + secrets.token_hex(16)
        self.start_agent()
        a = self.agent
        with a.connect() as s:
            frame = h.get_frame(probe, request_id=1, stage="AWSCURRENT")
            s.sendall(frame[:-3])   # the id whole, the stage cut: the agent waits for more
            time.sleep(0.3)
            hits, _, _ = scan_memory(a.pid(), {"probe": probe.encode()})
            self.assertTrue(hits, "the scan did not find an id sitting in the agent's input buffer")


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
@unittest.skipUnless(is_root(), "needs root (locking memory, switching users)")
class MemoryProtection(unittest.TestCase):
    def agent(self, mlock=None, **kw):
        extra = f"[cache]\nmlock = {mlock}\n" if mlock else ""
        return h.Agent([h.secret("app/x", [h.version("v1", ["AWSCURRENT"], string="x")])],
                       config_extra=extra, **kw)

    # libsodium locks its own guarded allocations (the sealing key, the
    # plaintext and reply buffers: some hundreds of KiB) whatever the policy;
    # mlockall() locks the whole address space, libraries and heap included.
    GUARDED_ONLY_KIB = 1024

    def assert_all_locked(self, pid):
        self.assertGreater(vmlck_kib(pid), max(self.GUARDED_ONLY_KIB,
                                               int(status_field(pid, "VmRSS").split()[0]) // 2))

    def test_default_best_effort_locks_memory_as_root(self):
        with self.agent() as a:
            if under_asan(a.pid()):
                self.skipTest("mlock is disabled under AddressSanitizer by design")
            self.assertEqual(a.cli("get", "app/x").stdout, b"x")
            self.assert_all_locked(a.pid())
            self.assertNotIn("NOT locked", a.read_log())

    def test_required_starts_as_root(self):
        with self.agent("required") as a:
            self.assertEqual(a.cli("get", "app/x").stdout, b"x")
            if not under_asan(a.pid()):
                self.assert_all_locked(a.pid())

    def test_off_locks_only_guarded_buffers(self):
        with self.agent("off") as a:
            self.assertEqual(a.cli("get", "app/x").stdout, b"x")
            self.assertLess(vmlck_kib(a.pid()), self.GUARDED_ONLY_KIB)

    def test_not_dumpable(self):
        # Run the agent as nobody: a dumpable process's /proc/PID entries belong
        # to its user, a non-dumpable one's to root, and another process of the
        # same user cannot read its memory. A dumpable control process shows
        # the difference is real.
        nobody = 65534
        a = self.agent("off")
        os.chown(a.dir, nobody, nobody)
        for path in (a.config, a.secrets_path):
            os.chown(path, nobody, nobody)
        drop = ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "--"]
        control = subprocess.Popen(drop + ["sleep", "30"])
        try:
            a.log = open(a.log_path, "wb")
            a.proc = subprocess.Popen(drop + [h.SMCACHED, "-c", a.config], stdin=subprocess.DEVNULL,
                                      stdout=a.log, stderr=subprocess.STDOUT, env=a.env)
            _wait_listening(a)
            pid = a.pid()
            self.assertEqual(os.stat(f"/proc/{pid}/status").st_uid, 0)
            self.assertEqual(status_field(pid, "Uid").split()[0], str(nobody))
            self.assertEqual(os.stat(f"/proc/{control.pid}").st_uid, nobody)
            read_mem = ("import sys\ntry:\n open(f'/proc/{sys.argv[1]}/mem','rb').close()\n"
                        " print('open')\nexcept OSError as e:\n print('denied', e.errno)\n")
            p = subprocess.run(drop + ["python3", "-c", read_mem, str(pid)], capture_output=True,
                               text=True, timeout=10)
            self.assertTrue(p.stdout.startswith("denied"), p.stdout + p.stderr)
            self.assertEqual(a.cli("get", "app/x").stdout, b"x")
            a.stop()
        finally:
            control.kill()
            control.wait()
            a.close()


def _wait_listening(agent, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.proc.poll() is not None:
            raise AssertionError(f"smcached exited with {agent.proc.returncode}:\n{agent.read_log()}")
        try:
            with agent.connect(timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"smcached did not start listening:\n{agent.read_log()}")


def _stats(agent):
    r = agent.request(h.frame(h.OP_STATS, 1))
    out = {}
    for v in r.all(h.T_STAT):
        f = dict(h.parse_fields(v))
        out[f[h.T_STAT_NAME].decode()] = int.from_bytes(f[h.T_STAT_VALUE], "big")
    return out


if __name__ == "__main__":
    unittest.main()
