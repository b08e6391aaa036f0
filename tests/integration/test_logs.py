"""Logs an operator can use: every line has a time, a level and a component, as text or as
JSON lines ([agent] log_format); prefetch outcomes, upstream failures, circuit breaker
transitions and reload outcomes are logged at the levels an operator watches; secret values
never appear, in either format, at debug level."""
import json
import os
import re
import signal
import time
import unittest

import smc_harness as h

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z smcached\[\d+\] \[([a-z]+)\] "
                       r"(error|warn|info|debug): (.*)$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MARKER = "LOGMARK-" + os.urandom(8).hex()


def secrets():
    return [h.secret("app/db", [h.version("v1", ["AWSCURRENT"], string=MARKER + "-string"),
                                h.version("v0", ["AWSPREVIOUS"], string=MARKER + "-previous")]),
            h.secret("app/bin", [h.version("b1", ["AWSCURRENT"], binary=MARKER.encode() + b"\x00\xff")])]


def parse_json_log(test, log):
    """Every line is one JSON object with the fields; returns them."""
    events = []
    for line in log.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            test.fail(f"not a JSON line: {line!r}")
        test.assertEqual(sorted(ev), ["component", "level", "message", "pid", "time"], line)
        test.assertRegex(ev["time"], TIME)
        test.assertIn(ev["level"], ("error", "warn", "info", "debug"))
        test.assertRegex(ev["component"], r"^[a-z]+$")
        events.append(ev)
    test.assertGreater(len(events), 3)
    return events


def exercise(test, a):
    """Every kind of request, good and bad, so every log path runs."""
    for args in (("get", "app/db"), ("get", "app/db", "--version-stage", "AWSPREVIOUS"),
                 ("get", "app/db", "--json"), ("get", "app/bin"), ("describe", "app/db"),
                 ("get", "app/none"), ("get", "app/db", "--refresh"), ("stats",), ("ping",)):
        a.cli(*args)


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class LogFormats(unittest.TestCase):
    def test_json_lines_have_every_field_and_never_a_value(self):
        with h.Agent(secrets(), agent_extra="log_format = json\n",
                     config_extra=f"[cache]\nprefetch = app/db, app/nope\n"
                                  f"[access]\nallow = user:{os.getuid()} app/db app/none\n") as a:
            exercise(self, a)
            self.assertEqual(a.cli("get", "app/bin").returncode, 4)   # denied: an audit line
            a.proc.send_signal(signal.SIGHUP)
            h_deadline = time.monotonic() + 10
            while "change(s) applied" not in a.read_log() and time.monotonic() < h_deadline:
                time.sleep(0.05)
            log = a.stop()
        events = parse_json_log(self, log)
        self.assertNotIn(MARKER, log)
        by_msg = {(e["level"], e["component"], e["message"]) for e in events}
        self.assertIn(("info", "service", "prefetch: app/db loaded (version v1)"), by_msg)
        self.assertTrue(any(lv == "warn" and c == "service" and m.startswith("prefetch: app/nope failed: NOT_FOUND")
                            for lv, c, m in by_msg), by_msg)
        # The reload outcome at warn, with its component; no "policy: " repeated in the message.
        self.assertTrue(any(lv == "warn" and c == "policy" and re.match(r"reload: .* read; 0 change\(s\) applied", m)
                            for lv, c, m in by_msg), by_msg)
        self.assertTrue(any(c == "main" and "listening on" in m for _, c, m in by_msg))
        # Audit lines on stderr are JSON lines too.
        self.assertTrue(any(c == "audit" and m.startswith('op=GET decision=denied status=ACCESS_DENIED')
                            and 'id="app/bin"' in m for _, c, m in by_msg), by_msg)

    def test_text_lines_have_a_level_and_a_component(self):
        with h.Agent(secrets(), config_extra="[cache]\nprefetch = app/db\n") as a:
            exercise(self, a)
            log = a.stop()
        self.assertNotIn(MARKER, log)
        components = set()
        for line in log.splitlines():
            m = TEXT_LINE.match(line)
            self.assertIsNotNone(m, line)
            components.add(m.group(1))
        self.assertTrue({"main", "policy", "service", "file"} <= components, components)
        self.assertRegex(log, r"(?m)\[service\] info: prefetch: app/db loaded \(version v1\)$")

    def test_log_format_is_applied_on_sighup(self):
        with h.Agent(secrets()) as a:
            with open(a.config) as f:
                conf = f.read()
            with open(a.config, "w") as f:
                f.write(conf.replace("log_level = debug\n", "log_level = debug\nlog_format = json\n"))
            a.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while '"component":"policy"' not in a.read_log() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(a.cli("get", "app/db").returncode, 0)
            log = a.stop()
        text, _, after = log.partition("reload: [agent] log_format changed, applied")
        self.assertTrue(after, log)
        tail = [l for l in log.splitlines() if l.startswith("{")]
        self.assertTrue(any('"reload: ' in l and "change(s) applied" in l for l in tail), log)
        parse_json_log(self, "\n".join(tail))


@unittest.skipUnless(h.have_binaries(), "build/smcached and build/smcache are not built")
class OperatorLevels(unittest.TestCase):
    def test_upstream_failures_and_breaker_transitions_at_warn_or_error(self):
        with h.Agent(secrets(), config_extra="[cache]\nnegative_ttl = 0\n") as a:
            with open(a.secrets_path, "w") as f:
                f.write("{ broken")
            for i in range(6):
                self.assertEqual(a.cli("get", f"app/missing{i}").returncode, 5)
            log = a.read_log()
            self.assertRegex(log, r"\[file\] error: file backend: secrets file .* is invalid")
            self.assertRegex(log, r"\[cache\] warn: 5 upstream failures in a row; circuit breaker open")
            a.write_secrets(secrets())
            # The first probe goes out 2 s after the breaker opened.
            deadline = time.monotonic() + 30
            while "circuit breaker closed" not in a.read_log() and time.monotonic() < deadline:
                a.cli("get", "app/db")
                time.sleep(0.2)
            log = a.stop()
        self.assertRegex(log, r"\[cache\] warn: upstream answers again; circuit breaker closed")
        self.assertNotIn(MARKER, log)

    def test_failed_reload_at_error(self):
        with h.Agent(secrets()) as a:
            with open(a.config, "a") as f:
                f.write("[cache]\nttl = abc\n")
            a.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "reload failed" not in a.read_log() and time.monotonic() < deadline:
                time.sleep(0.05)
            log = a.stop()
        self.assertRegex(log, r"\[policy\] error: reload failed, the running configuration stays: .*ttl")


if __name__ == "__main__":
    unittest.main()
