"""The documentation cannot disagree with the code.

- smcached.conf(5) and conf/smcached.conf against the configuration key table (read through
  `smcached --dump-config-keys`, so a key added to agent/config.c is checked without editing
  this test): every key documented with its exact default, bounds and reload behaviour; no
  documented key that does not exist; the commented values of conf/smcached.conf are the
  built-in defaults.
- smcached(8) names every AWS_* variable the agent reads and every signal it handles.
- libsmcache(3)'s example program compiles as written against the built library and reads a
  secret from a running agent.
"""
import glob
import os
import re
import subprocess
import tempfile
import unittest

import smc_harness as h

MAN = os.path.join(h.ROOT, "man")
CONF = os.path.join(h.ROOT, "conf", "smcached.conf")


def unroff(text):
    """The text a roff line stands for, for the escapes the man pages use."""
    return (text.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")
            .replace("\\&", ""))


def dump_keys():
    p = subprocess.run([h.SMCACHED, "--dump-config-keys"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    keys = []
    for line in p.stdout.splitlines():
        section, key, typ, default, bounds, reload = line.split("\t")
        keys.append(dict(section=section, key=key, type=typ, default=default, bounds=bounds,
                         reload=reload == "reload"))
    assert len(keys) > 10, p.stdout
    return keys


def summary_line(k):
    """The line smcached.conf(5) must carry under the key (see the comment at its top)."""
    line = f"Default: {k['default']}."
    if k["bounds"] != "-":
        line += (" Values: " if k["type"] in ("enum", "level") else " Range: ") + k["bounds"] + "."
    line += " Applied on SIGHUP." if k["reload"] else " Needs a restart."
    return line


def man_section(text, name):
    """The lines of the .SH section called name."""
    m = re.search(rf"(?ms)^\.SH {re.escape(name)}\n(.*?)(?=^\.SH |\Z)", text)
    assert m, f"no .SH {name} section"
    return m.group(1)


def man_conf_keys():
    """{(section, key): summary line} from the KEYS section of smcached.conf(5)."""
    with open(os.path.join(MAN, "smcached.conf.5")) as f:
        lines = man_section(f.read(), "KEYS").splitlines()
    found, section = {}, None
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\.SS \[(\w+)\]", line)
        if m:
            section = m.group(1)
        elif line == ".TP" and i + 2 < len(lines) and lines[i + 1].startswith(".B "):
            key = lines[i + 1][3:].strip()
            assert (section, key) not in found, f"[{section}] {key} documented twice"
            found[(section, key)] = unroff(lines[i + 2])
    return found


def conf_keys():
    """{(section, key): [values]} of the `key = value` and `#key = value` lines."""
    found, section = {}, None
    with open(CONF) as f:
        for line in f:
            m = re.match(r"\[(\w+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"#?(\w+) = (.*)$", line.rstrip("\n"))
            if m and section:
                found.setdefault((section, m.group(1)), []).append(m.group(2))
    return found


@unittest.skipUnless(h.have_binaries(), "build/smcached is not built")
class ConfigKeysDocumented(unittest.TestCase):
    def test_every_key_in_the_man_page_with_its_default_and_bounds(self):
        keys, man = dump_keys(), man_conf_keys()
        missing, wrong = [], []
        for k in keys:
            want = summary_line(k)
            got = man.get((k["section"], k["key"]))
            if got is None:
                missing.append(f"[{k['section']}] {k['key']}: add under .SS [{k['section']}]:\n"
                               f".TP\n.B {k['key']}\n{want.replace('-', chr(92) + '-')}\n.br\n"
                               "What it does.")
            elif got != want:
                wrong.append(f"[{k['section']}] {k['key']}: man page says\n  {got}\nthe table says\n  {want}")
        self.assertEqual(missing, [], "keys missing from man/smcached.conf.5:\n" + "\n".join(missing))
        self.assertEqual(wrong, [], "man/smcached.conf.5 disagrees:\n" + "\n".join(wrong))
        stale = sorted(set(man) - {(k["section"], k["key"]) for k in keys})
        self.assertEqual(stale, [], "man/smcached.conf.5 documents keys that do not exist")

    def test_every_key_in_the_example_config_and_no_other(self):
        keys, conf = dump_keys(), conf_keys()
        table = {(k["section"], k["key"]) for k in keys}
        self.assertEqual(sorted(table - set(conf)), [], "keys missing from conf/smcached.conf")
        self.assertEqual(sorted(set(conf) - table), [], "conf/smcached.conf has keys that do not exist")

    def test_example_config_values_are_the_defaults(self):
        """conf/smcached.conf says its commented values ARE the defaults: uncommented, every
        key with a default gives the same effective configuration as no file at all."""
        # [aws] keys are an error beside the default file backend; test_config's
        # test_example_file uncomments them with [backend] type = aws.
        defaults = {(k["section"], k["key"]) for k in dump_keys()
                    if not k["default"].startswith("(") and k["section"] != "aws"}
        out, section = [], None
        with open(CONF) as f:
            for line in f:
                m = re.match(r"\[(\w+)\]\s*$", line)
                section = m.group(1) if m else section
                m = re.match(r"#(\w+) = ", line)
                out.append(line[1:] if m and (section, m.group(1)) in defaults else line)
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("".join(out))
            f.flush()
            uncommented = subprocess.run([h.SMCACHED, "--check-config", "-c", f.name],
                                         capture_output=True, text=True, timeout=30)
            self.assertEqual(uncommented.returncode, 0, uncommented.stdout + uncommented.stderr)
        builtin = subprocess.run([h.SMCACHED, "--check-config"], capture_output=True, text=True,
                                 timeout=30)
        self.assertEqual(builtin.returncode, 0, builtin.stderr)
        self.assertEqual(uncommented.stdout, builtin.stdout)


class AgentManPage(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(MAN, "smcached.8")) as f:
            self.man = f.read()
        self.sources = ""
        for path in glob.glob(os.path.join(h.ROOT, "agent", "**", "*.c"), recursive=True):
            with open(path) as f:
                self.sources += f.read()

    def test_every_aws_variable_is_documented(self):
        # Names in strings, alone or in a comma-separated default (the HTTP door's token list).
        used = {v for lst in re.findall(r'"((?:AWS_[A-Z0-9_]+,?)+)"', self.sources)
                for v in lst.split(",") if v}
        self.assertGreater(len(used), 10)
        env = unroff(man_section(self.man, "ENVIRONMENT"))
        documented = set(re.findall(r"\bAWS_[A-Z0-9_]+", env))
        self.assertEqual(sorted(used - documented), [], "AWS variables missing from smcached(8)")
        self.assertEqual(sorted(documented - used), [], "smcached(8) names AWS variables the agent does not read")

    def test_every_signal_is_documented(self):
        handled = set(re.findall(r"\b(?:evsignal_new\([^,]+,|signal\()\s*(SIG[A-Z]+)", self.sources))
        self.assertTrue({"SIGTERM", "SIGINT", "SIGHUP"} <= handled, handled)
        documented = set(re.findall(r"\bSIG[A-Z]+", man_section(self.man, "SIGNALS")))
        self.assertEqual(sorted(handled - documented), [], "signals missing from smcached(8)")


# libsmcache(3)'s example program is compiled as written and run against an agent by
# test_libsmcache.py (LibsmcacheTest.test_man_page_example), its one home.


if __name__ == "__main__":
    unittest.main()
