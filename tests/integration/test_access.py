"""Access control end to end: real smcached, real peers of other uids.

Clients run as other users through setpriv(1), so these tests need root; they
are skipped otherwise. What they prove:
  - a granted user reads its secrets (by name, ARN and partial ARN);
  - a refused one gets exit 4 "access denied", byte-identical for an existing
    and a missing secret, and the agent asks the upstream nothing for it;
  - root is not exempt; STATS and PING rules; group rules by supplementary group;
  - one audit line per decision, with uid/pid/id/outcome and never a value;
  - per-uid request rate and connection limits hit one uid, not another;
  - SIGHUP applies new rules without losing the cache, and a broken file
    leaves the running rules in place.
"""
import os
import pwd
import grp
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import unittest

import smc_harness as h

ACCOUNT_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
ARN_ALLOWED = ACCOUNT_ARN + "app/allowed-AbCdEf"
V1 = "11111111-1111-1111-1111-111111111111"
FLAG_REFRESH = 0x0001        # GET request flag (proto/PROTOCOL.md)
SETPRIV = shutil.which("setpriv")

NOBODY = "nobody"
NOGROUP = "nogroup"
OTHER_USER = "daemon"        # uid 1 on Debian: a user with no rule
SUPP_GROUP = "adm"           # gid 4: a supplementary group with a rule


def _have_users():
    try:
        pwd.getpwnam(NOBODY), grp.getgrnam(NOGROUP), pwd.getpwnam(OTHER_USER), grp.getgrnam(SUPP_GROUP)
        return True
    except KeyError:
        return False


def _skip_reason():
    if not h.have_binaries():
        return "build/smcached and build/smcache are not built"
    if os.geteuid() != 0:
        return "needs root (runs clients as other users with setpriv)"
    if SETPRIV is None:
        return "setpriv (util-linux) is not installed"
    if not _have_users():
        return f"needs users {NOBODY}, {OTHER_USER} and groups {NOGROUP}, {SUPP_GROUP}"
    return None


SKIP = _skip_reason()


def secrets():
    return [
        h.secret("app/allowed", [h.version(V1, ["AWSCURRENT"], string="allowed-value-7f3a")],
                 arn=ARN_ALLOWED),
        h.secret("app/other", [h.version(V1, ["AWSCURRENT"], string="other-value-91c2")]),
        h.secret("app/root-only", [h.version(V1, ["AWSCURRENT"], string="root-value-55d0")]),
        h.secret("ops/tool", [h.version(V1, ["AWSCURRENT"], string="ops-value-0b1e")]),
        # Named like app/allowed plus an ARN suffix, and not granted to nobody.
        h.secret("app/allowed-XyZ123", [h.version(V1, ["AWSCURRENT"], string="twin-value-c4d2")],
                 arn=ACCOUNT_ARN + "app/allowed-XyZ123-QwErTy"),
    ]


VALUES = ("allowed-value-7f3a", "other-value-91c2", "root-value-55d0", "ops-value-0b1e",
          "twin-value-c4d2")

RULES = textwrap.dedent(f"""\
    [access]
    allow = user:{NOBODY} app/allowed team/*
    allow = user:root app/root-only
    allow = group:{SUPP_GROUP} ops/*
    [audit]
    level = all
    """)


def as_user(user, group, *argv, groups=None):
    """argv prefixed with setpriv to run as user:group (no supplementary groups unless given)."""
    pre = [SETPRIV, f"--reuid={user}", f"--regid={group}"]
    pre += [f"--groups={groups}"] if groups else ["--clear-groups"]
    return pre + list(argv)


# A tiny client that runs as another user (it cannot import the harness from a
# root-only checkout): pipelines GETs on one connection, or holds connections,
# and prints the statuses it got as JSON.
PEER_CLIENT = textwrap.dedent(r"""
    import json, socket, struct, sys
    path, mode, n, sid, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])

    def frame(op, rid, fields=b"", flags=0):
        body = struct.pack(">BBHIH", 1, op, flags, rid, 0) + fields
        return struct.pack(">I", len(body)) + body

    def read_reply(s):
        def exact(k):
            b = b""
            while len(b) < k:
                c = s.recv(k - len(b))
                if not c:
                    raise ConnectionError("closed")
                b += c
            return b
        (length,) = struct.unpack(">I", exact(4))
        body = exact(length)
        _, _, _, rid, status = struct.unpack_from(">BBHIH", body)
        return rid, status

    field = struct.pack(">HI", 1, len(sid)) + sid.encode()
    out = []
    if mode == "pipeline":
        s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path)
        s.sendall(b"".join(frame(2, i + 1, field, flags) for i in range(n)))
        # Replies come in order of completion: report statuses in request order.
        out = [st for _, st in sorted(read_reply(s) for _ in range(n))]
    else:  # "connections": open n, PING on each, report each outcome
        socks = []
        for i in range(n):
            s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path)
            socks.append(s)
        for s in socks:
            try:
                s.sendall(frame(1, 7))
                out.append(read_reply(s)[1])
            except OSError:
                out.append("closed")
    print(json.dumps(out))
""")


def stats(agent):
    r = agent.request(h.frame(h.OP_STATS, 1))
    assert r.status == h.ST_OK, r.message
    out = {}
    for v in r.all(h.T_STAT):
        f = dict(h.parse_fields(v))
        out[f[h.T_STAT_NAME].decode()] = struct.unpack(">Q", f[h.T_STAT_VALUE])[0]
    return out


UPSTREAM_KEYS = ("upstream_get_ok", "upstream_get_error", "upstream_describe_ok",
                 "upstream_describe_error", "cache_misses", "cache_fetches",
                 "cache_negative_entries")


class AccessAgent(h.Agent):
    """An agent whose socket other users can reach, with access rules."""

    def __init__(self, rules=RULES, agent_extra=""):
        super().__init__(secrets(), config_extra=rules,
                         agent_extra="socket_mode = 0666\n" + agent_extra)
        os.chmod(self.dir, 0o755)
        self.rules = rules
        self.agent_extra = agent_extra

    def rewrite_config(self, text):
        tmp = self.config + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def base_config(self):
        return (f"[agent]\nsocket = {self.socket}\nlog_level = debug\nsocket_mode = 0666\n"
                f"{self.agent_extra}[backend]\ntype = file\n[file]\npath = {self.secrets_path}\n")

    def run(self, argv, timeout=30):
        """Runs argv with SMCACHE_SOCKET set; returns (pid, rc, stdout, stderr)."""
        env = dict(self.env, SMCACHE_SOCKET=self.socket)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        out, err = p.communicate(timeout=timeout)
        return p.pid, p.returncode, out, err

    def cli_as(self, user, group, *args, groups=None):
        return self.run(as_user(user, group, h.SMCACHE, *args, groups=groups))

    def peer_client(self, user, group, mode, n, sid="app/allowed", flags=0):
        import json
        _, rc, out, err = self.run(as_user(user, group, sys.executable, "-c", PEER_CLIENT,
                                           self.socket, mode, str(n), sid, str(flags)))
        if rc != 0:
            raise AssertionError(f"peer client failed ({rc}): {err.decode(errors='replace')}")
        return json.loads(out)

    def wait_log(self, pattern, start=0, timeout=10.0):
        """Waits until the log (from offset start) matches pattern; returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.read_log()[start:])
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.read_log()[-4000:]}")

    def sighup(self):
        """Sends SIGHUP; returns once the agent logged the outcome."""
        start = len(self.read_log())
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(r"reload: (access control|running on)|reload failed", start)
        return self.read_log()[start:]


@unittest.skipIf(SKIP, SKIP or "")
class AccessRules(h.SharedAgentTest):
    @classmethod
    def make_agent(cls):
        return AccessAgent()

    def test_granted_user_reads_its_secret_by_name_and_arn(self):
        for sid in ("app/allowed", ARN_ALLOWED, ARN_ALLOWED[:-7]):
            _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "get", sid)
            self.assertEqual((rc, out), (0, b"allowed-value-7f3a"), (sid, err))

    def test_arn_suffix_ambiguity_does_not_tell_existing_from_missing(self):
        # "...:secret:app/allowed-XXXXXX" passes nobody's rule for app/allowed (the suffix);
        # it may resolve to app/allowed-XyZ123, which nobody may not read, or to nothing.
        # Both answers must be the same, for GET and DESCRIBE, cold and remembered.
        results = {}
        for sid in (ACCOUNT_ARN + "app/allowed-XyZ123", ACCOUNT_ARN + "app/allowed-Nope12"):
            for op in ("get", "describe", "get"):
                _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, op, sid)
                results[(sid, op)] = (rc, out, err)
        for key, got in results.items():
            self.assertEqual(got, (4, b"", b"smcache: access denied\n"), key)
        # nobody's own secret by its full ARN still reads.
        _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "get", ARN_ALLOWED)
        self.assertEqual((rc, out), (0, b"allowed-value-7f3a"), err)

    def test_denied_is_the_same_for_existing_and_missing_secrets(self):
        before = stats(self.agent)
        results = []
        for sid in ("app/other", "app/does-not-exist", ACCOUNT_ARN + "app/other",
                    "arn:aws:secretsmanager:us-east-1:999999999999:secret:app/other-AbCdEf"):
            _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "get", sid)
            results.append((rc, out, err))
        _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "describe", "app/other")
        results.append((rc, out, err))
        _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "describe", "app/nope")
        results.append((rc, out, err))
        for rc, out, err in results:
            self.assertEqual((rc, out, err), (4, b"", b"smcache: access denied\n"))
        after = stats(self.agent)
        # Nothing was looked up on their behalf: no fetch, no upstream call, no negative entry.
        for key in UPSTREAM_KEYS:
            self.assertEqual(after[key], before[key], key)
        self.assertEqual(after["replies_access_denied"] - before["replies_access_denied"], 6)

    def test_root_is_not_exempt(self):
        p = self.agent.cli("get", "app/other")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (4, b"", b"smcache: access denied\n"))
        p = self.agent.cli("get", "app/root-only")
        self.assertEqual((p.returncode, p.stdout), (0, b"root-value-55d0"), p.stderr)

    def test_stats_and_ping(self):
        # PING: everyone. STATS: root, and users a rule names; not others.
        _, rc, _, err = self.agent.cli_as(OTHER_USER, OTHER_USER, "ping")
        self.assertEqual(rc, 0, err)
        _, rc, out, err = self.agent.cli_as(OTHER_USER, OTHER_USER, "stats")
        self.assertEqual((rc, out, err), (4, b"", b"smcache: access denied\n"))
        _, rc, out, err = self.agent.cli_as(NOBODY, NOGROUP, "stats")
        self.assertEqual(rc, 0, err)
        self.assertIn(b"access_rules", out)
        self.assertEqual(self.agent.cli("stats").returncode, 0)
        # A user without any rule reads nothing.
        _, rc, _, err = self.agent.cli_as(OTHER_USER, OTHER_USER, "get", "app/allowed")
        self.assertEqual((rc, err), (4, b"smcache: access denied\n"))

    def test_group_rule_by_supplementary_group(self):
        _, rc, out, err = self.agent.cli_as(OTHER_USER, OTHER_USER, "get", "ops/tool",
                                            groups=SUPP_GROUP)
        self.assertEqual((rc, out), (0, b"ops-value-0b1e"), err)
        _, rc, out, err = self.agent.cli_as(OTHER_USER, OTHER_USER, "get", "ops/tool")
        self.assertEqual((rc, err), (4, b"smcache: access denied\n"))
        # ... and by primary group.
        _, rc, out, err = self.agent.cli_as(OTHER_USER, SUPP_GROUP, "get", "ops/tool")
        self.assertEqual((rc, out), (0, b"ops-value-0b1e"), err)

    def test_audit_line_per_decision_never_a_value(self):
        uid = pwd.getpwnam(NOBODY).pw_uid
        gid = grp.getgrnam(NOGROUP).gr_gid
        start = len(self.agent.read_log())
        pid_ok, rc, _, _ = self.agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")
        self.assertEqual(rc, 0)
        pid_no, rc, _, _ = self.agent.cli_as(NOBODY, NOGROUP, "get", "app/other",
                                             "--version-stage", "AWSPREVIOUS")
        self.assertEqual(rc, 4)
        pid_evil, rc, _, _ = self.agent.cli_as(NOBODY, NOGROUP, "get", "x\x1b[31m\"y")
        self.assertEqual(rc, 4)
        self.agent.wait_log(rf"pid={pid_evil} ", start)
        log = self.agent.read_log()[start:]
        self.assertRegex(log, rf"audit: op=GET decision=allowed status=OK uid={uid} gid={gid}"
                              rf" pid={pid_ok} id=\"app/allowed\" stage=- version_id=-\n")
        self.assertRegex(log, rf"audit: op=GET decision=denied status=ACCESS_DENIED uid={uid}"
                              rf" gid={gid} pid={pid_no} id=\"app/other\" stage=\"AWSPREVIOUS\""
                              rf" version_id=-\n")
        # Client-chosen ids cannot forge log lines or colour the terminal.
        self.assertIn(rf'pid={pid_evil} id="x\x1b[31m\x22y"', log)
        self.assertNotIn("\x1b", log)
        self.assertEqual(len(re.findall(r"audit: ", log)), 3)
        full = self.agent.read_log()
        for value in VALUES:
            self.assertNotIn(value, full)


@unittest.skipIf(SKIP, SKIP or "")
class AccessLimits(unittest.TestCase):
    def test_request_rate_limits_one_uid_only(self):
        with AccessAgent(RULES + "[limits]\nrequests_per_second_per_uid = 1\nburst_per_uid = 5\n") as agent:
            statuses = agent.peer_client(NOBODY, NOGROUP, "pipeline", 20)
            self.assertEqual(statuses[:5], [h.ST_OK] * 5)
            self.assertEqual(statuses[5:], [h.ST_LIMIT_EXCEEDED] * 15)
            # Another uid (root) is served meanwhile, and the refusal explains itself.
            for _ in range(3):
                r = agent.request(h.get_frame("app/root-only"))
                self.assertEqual(r.status, h.ST_OK, r.message)
            _, rc, _, err = agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")
            self.assertNotEqual(rc, 0)
            self.assertIn(b"too many requests from your user", err)
            agent.wait_log(r"warn: uid \d+ \(pid \d+\) exceeds requests_per_second_per_uid")
            st = stats(agent)
            self.assertGreaterEqual(st["limits_requests_rejected"], 16)
            self.assertGreaterEqual(st["replies_limit_exceeded"], 16)

    def test_forced_refreshes_per_uid(self):
        config = (RULES + "[limits]\nrefreshes_per_minute_per_uid = 2\n"
                  "[cache]\nmin_refresh_interval = 0\n")
        with AccessAgent(config) as agent:
            with agent.connect() as s:
                got = []
                for i in range(3):
                    s.sendall(h.frame(h.OP_GET, i + 1, h.field(h.T_SECRET_ID, "app/root-only"),
                                      flags=FLAG_REFRESH))
                    got.append(h.read_reply(s))
                    if i == 1:
                        upstream = stats(agent)["upstream_get_ok"]
            self.assertEqual([r.status for r in got], [h.ST_OK, h.ST_OK, h.ST_LIMIT_EXCEEDED])
            self.assertEqual(got[2].message, "too many forced refreshes from your user;"
                                             " try again later")
            self.assertEqual(stats(agent)["upstream_get_ok"], upstream)
            # Plain reads are not refreshes; another uid has its own allowance.
            self.assertEqual(agent.request(h.get_frame("app/root-only")).status, h.ST_OK)
            self.assertEqual(agent.peer_client(NOBODY, NOGROUP, "pipeline", 2, flags=FLAG_REFRESH),
                             [h.ST_OK, h.ST_OK])
            # A refresh access control refuses costs nothing and says only "access denied".
            self.assertEqual(agent.peer_client(NOBODY, NOGROUP, "pipeline", 1, sid="app/other",
                                               flags=FLAG_REFRESH), [h.ST_ACCESS_DENIED])
            st = stats(agent)
            self.assertEqual(st["limits_refreshes_rejected"], 1)
            agent.wait_log(r"warn: uid 0 \(pid \d+\) exceeds refreshes_per_minute_per_uid")

    def test_connection_limit_per_uid(self):
        with AccessAgent(RULES + "[limits]\nconnections_per_uid = 2\n") as agent:
            # The harness's start-up probe must have left: it counted as root's.
            deadline = time.monotonic() + 5
            while stats(agent)["connections_active"] > 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            # Root holds its two; nobody still gets its own two, not a third.
            socks = [agent.connect() for _ in range(2)]
            try:
                for s in socks:
                    s.sendall(h.frame(h.OP_PING, 3))
                    self.assertEqual(h.read_reply(s).status, h.ST_OK)
                statuses = agent.peer_client(NOBODY, NOGROUP, "connections", 3)
                self.assertEqual(statuses[:2], [h.ST_OK, h.ST_OK])
                self.assertIn(statuses[2], (h.ST_LIMIT_EXCEEDED, "closed"))
                # Root's third is refused with a reason, then closed.
                with agent.connect() as third:
                    r = h.read_reply(third)
                    self.assertEqual(r.status, h.ST_LIMIT_EXCEEDED)
                    self.assertIn("too many connections from your user", r.message)
                    self.assertTrue(h.wait_closed(third))
            finally:
                for s in socks:
                    s.close()
            # Leaving frees the slots.
            deadline = time.monotonic() + 5
            while True:
                with agent.connect() as s:
                    s.sendall(h.frame(h.OP_STATS, 4))
                    r = h.read_reply(s)
                if r.status == h.ST_OK or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual(r.status, h.ST_OK, r.message)
            self.assertGreaterEqual(stats(agent)["limits_connections_rejected"], 2)
            agent.wait_log(r"warn: uid \d+ \(pid \d+\) is at connections_per_uid")


@unittest.skipIf(SKIP, SKIP or "")
class AccessReload(unittest.TestCase):
    def test_sighup_applies_new_rules_and_keeps_the_cache(self):
        with AccessAgent() as agent:
            self.assertEqual(agent.cli("get", "app/root-only").returncode, 0)
            self.assertEqual(agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")[1], 0)
            _, rc, _, _ = agent.cli_as(NOBODY, NOGROUP, "get", "app/other")
            self.assertEqual(rc, 4)
            before = stats(agent)
            self.assertEqual(before["cache_entries"], 2)

            # A new rule, a reloadable change (log level) and one that needs a restart (ttl).
            agent.rewrite_config(agent.base_config() + RULES.replace(
                "allow = user:root app/root-only",
                "allow = user:root app/root-only\nallow = user:nobody app/other")
                + "[cache]\nttl = 7\n")
            log = agent.sighup()
            self.assertIn("reload: [cache] ttl changed, needs a restart; not applied", log)
            self.assertIn("reload: [access] allow changed, applied", log)
            self.assertIn("reload: access control on, 4 rules", log)

            _, rc, out, err = agent.cli_as(NOBODY, NOGROUP, "get", "app/other")
            self.assertEqual((rc, out), (0, b"other-value-91c2"), err)
            # Cached entries survived: reading them again asks the upstream nothing.
            mid = stats(agent)
            self.assertEqual(mid["cache_entries"], 3)
            for _ in range(3):
                self.assertEqual(agent.cli("get", "app/root-only").returncode, 0)
                self.assertEqual(agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")[1], 0)
            after = stats(agent)
            self.assertEqual(after["upstream_get_ok"], mid["upstream_get_ok"])
            self.assertEqual(after["cache_entries"], 3)
            self.assertEqual(after["cache_hits"] - mid["cache_hits"], 6)

            # A rule removed takes effect too, for a cached secret.
            agent.rewrite_config(agent.base_config() + RULES)
            agent.sighup()
            _, rc, _, err = agent.cli_as(NOBODY, NOGROUP, "get", "app/other")
            self.assertEqual((rc, err), (4, b"smcache: access denied\n"))
            self.assertEqual(stats(agent)["cache_entries"], 3)

    def test_sighup_with_a_broken_file_keeps_the_running_rules(self):
        with AccessAgent() as agent:
            self.assertEqual(agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")[1], 0)
            for broken, why in (
                    (RULES.replace("allow = user:root app/root-only", "allow = user:root"
                                   " app/root-only\nallow = user:no-such-user-smc app/*"),
                     r"\[access\] allow: unknown user 'no-such-user-smc'"),
                    (RULES.replace("level = all", "level = sometimes"),
                     r"\[audit\] level: 'sometimes' is not one of"),
            ):
                agent.rewrite_config(agent.base_config() + broken.replace(
                    "app/allowed team/*", "app/other app/allowed"))
                log = agent.sighup()
                self.assertRegex(log, r"error: reload failed, the running configuration stays: "
                                      + re.escape(os.path.realpath(agent.config)) + r":\d+: " + why)
                # Old rules: still allowed what they allowed, still refused the new grant.
                _, rc, out, _ = agent.cli_as(NOBODY, NOGROUP, "get", "app/allowed")
                self.assertEqual((rc, out), (0, b"allowed-value-7f3a"))
                _, rc, _, err = agent.cli_as(NOBODY, NOGROUP, "get", "app/other")
                self.assertEqual((rc, err), (4, b"smcache: access denied\n"))
            # The agent is healthy and later good files still apply.
            agent.rewrite_config(agent.base_config() + RULES.replace("app/allowed team/*",
                                                                     "app/other app/allowed"))
            agent.sighup()
            self.assertEqual(agent.cli_as(NOBODY, NOGROUP, "get", "app/other")[1], 0)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class AccessOff(unittest.TestCase):
    def test_no_rules_everything_allowed_and_said_at_start(self):
        with h.Agent(secrets()) as agent:
            # The socket listens before the policy is logged: wait for the line.
            deadline = time.monotonic() + 10
            while "access control is off" not in agent.read_log() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertIn("info: start-up: access control is off", agent.read_log())
            p = agent.cli("get", "app/other")
            self.assertEqual((p.returncode, p.stdout), (0, b"other-value-91c2"))


if __name__ == "__main__":
    unittest.main()
