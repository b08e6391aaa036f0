#!/usr/bin/env python3
"""Runs the whole smcache test suite and ends with one line "N passed, N failed".

Three kinds of tests, each counted per test case:
  - cmocka unit tests: every build/tests/test_* program, read as TAP;
  - fuzz corpus replays: every build/tests/replay_fuzz_* over tests/fuzz/corpus/fuzz_*;
  - integration tests: every tests/integration/test_*.py, run by unittest in its own process.
The binaries come from --build (build/ or build/asan); integration tests find them
through the SMCACHE_BUILD environment variable.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UNITTEST_CHILD = r"""
import json, sys, unittest
sys.path.insert(0, sys.argv[2])
suite = unittest.defaultTestLoader.discover(sys.argv[2], pattern=sys.argv[1])
result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
print("SMCACHE-RESULT " + json.dumps({
    "run": result.testsRun,
    "failed": len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses),
    "skipped": len(result.skipped),
    "names": [str(t) for t, _ in result.failures + result.errors]}))
"""


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def add(self, passed, failed, skipped, failures=()):
        self.passed += passed
        self.failed += failed
        self.skipped += skipped
        self.failures.extend(failures)


def sanitizer_env(env):
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:strict_string_checks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def run_tap(name, argv, env, timeout):
    """Runs a cmocka program with TAP output; returns (passed, failed, skipped, failures, log)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 0, 1, 0, [f"{name}: timed out after {timeout}s"], out
    passed = failed = skipped = 0
    failures = []
    for line in out.splitlines():
        if re.match(r"^not ok \d+ # SKIP", line) or re.match(r"^ok \d+ # SKIP", line):
            skipped += 1
        elif line.startswith("ok "):
            passed += 1
        elif re.match(r"^not ok \d+", line):
            failed += 1
            failures.append(f"{name}: {line}")
    if rc != 0 and failed == 0:
        # A crash, a sanitizer report or an exit without TAP: count it.
        failed += 1
        failures.append(f"{name}: exited with status {rc}")
    if passed + failed + skipped == 0:
        failed = 1
        failures.append(f"{name}: ran no test")
    elapsed = time.monotonic() - start
    print(f"  {name}: {passed} passed, {failed} failed, {skipped} skipped ({elapsed:.1f}s)", flush=True)
    return passed, failed, skipped, failures, out


def run_replay(name, argv, env, timeout):
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return 0, 1, 0, [f"{name}: timed out"], ""
    ok = proc.returncode == 0
    print(f"  {name}: {'passed' if ok else 'FAILED'} ({proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''})", flush=True)
    return (1, 0, 0, [], proc.stdout + proc.stderr) if ok else (0, 1, 0, [f"{name}: replay failed"], proc.stdout + proc.stderr)


def run_integration(path, env, timeout):
    name = os.path.relpath(path, ROOT)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", UNITTEST_CHILD, os.path.basename(path),
                               os.path.dirname(path)], cwd=ROOT, env=env, capture_output=True,
                              text=True, errors="replace", timeout=timeout)
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        return 0, 1, 0, [f"{name}: timed out after {timeout}s"], str(exc.stderr or "")
    m = re.search(r"^SMCACHE-RESULT (.*)$", proc.stdout, re.M)
    if not m:
        return 0, 1, 0, [f"{name}: crashed (status {proc.returncode})"], out
    r = json.loads(m.group(1))
    passed = r["run"] - r["failed"] - r["skipped"]
    elapsed = time.monotonic() - start
    print(f"  {name}: {passed} passed, {r['failed']} failed, {r['skipped']} skipped ({elapsed:.1f}s)", flush=True)
    return passed, r["failed"], r["skipped"], [f"{name}: {n}" for n in r["names"]], out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="", help="run only tests whose file name contains this")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    env = sanitizer_env(dict(os.environ))
    env["SMCACHE_BUILD"] = build
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    tally = Tally()
    logs = {}

    # Tests come from the source tree, so a stale binary of a removed test never runs and a
    # test whose program was not built fails instead of vanishing.
    tests_dir = os.path.join(build, "tests")
    jobs = []
    for f in sorted(os.listdir(os.path.join(ROOT, "tests", "unit"))):
        if f.startswith("test_") and f.endswith(".c") and (not args.only or args.only in f):
            jobs.append(("unit", f[:-2], os.path.join(tests_dir, f[:-2])))
    for f in sorted(os.listdir(os.path.join(ROOT, "tests", "fuzz"))):
        if f.startswith("fuzz_") and f.endswith(".c") and (not args.only or args.only in f):
            corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", f[:-2])
            jobs.append(("replay", "replay_" + f[:-2], [os.path.join(tests_dir, "replay_" + f[:-2]), corpus]))
    integ = os.path.join(ROOT, "tests", "integration")
    for f in sorted(os.listdir(integ)) if os.path.isdir(integ) else []:
        if f.startswith("test_") and f.endswith(".py") and (not args.only or args.only in f):
            jobs.append(("integration", f, os.path.join(integ, f)))

    unit_env = dict(env, CMOCKA_MESSAGE_OUTPUT="TAP")

    def run(job):
        kind, name, target = job
        program = target if kind == "unit" else target[0] if kind == "replay" else None
        if program is not None and not os.access(program, os.X_OK):
            print(f"  {name}: FAILED (not built: {program})", flush=True)
            return name, (0, 1, 0, [f"{name}: not built"], "")
        if kind == "unit":
            return name, run_tap(name, [target], unit_env, 300)
        if kind == "replay":
            return name, run_replay(name, target, env, 300)
        return name, run_integration(target, env, 600)

    # Load tests (they saturate both cores, or measure latency under load) run
    # alone, after the rest, so they neither disturb nor are disturbed.
    def exclusive(job):
        if job[0] != "integration":
            return False
        with open(job[2], encoding="utf-8") as f:
            return "\nSMCACHE_RUN_ALONE = True" in f.read()

    shared = [j for j in jobs if not exclusive(j)]
    alone = [j for j in jobs if exclusive(j)]

    def record(results):
        for name, (p, f, s, failures, log) in results:
            tally.add(p, f, s, failures)
            if f:
                logs[name] = log

    print(f"smcache tests ({args.build}):", flush=True)
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        record(pool.map(run, shared))
    record(map(run, alone))
    for name, log in logs.items():
        print(f"\n===== output of {name} =====\n{log[-20000:]}")
    if tally.failures:
        print("\nfailures:")
        for f in tally.failures:
            print(f"  {f}")
    print(f"\n({len(jobs)} test programs in {time.monotonic() - start:.0f}s)")
    line = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        line += f", {tally.skipped} skipped"
    print(line)
    return 1 if tally.failed or not jobs else 0


if __name__ == "__main__":
    sys.exit(main())
