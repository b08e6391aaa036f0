#!/usr/bin/env python3
"""make bench: smcached against the physical limit, and memory per cached version.

1. Seal micro-benchmark: build/bench/bench_seal, printed as is.
2. Throughput and latency: for each scenario (connections c, pipeline depth d),
   build/bench/loadgen runs against build/bench/echo_server (a minimal epoll
   server sending a pre-encoded reply of the same size as the agent's: the
   physical limit) and against smcached serving a cached 1 KiB secret,
   interleaved and repeated; medians are compared as ratios, since both servers
   share the machine with the load generator in the same way.
3. Memory: an agent loads 10,000 secrets of 1 KiB; the growth of its anonymous
   memory minus the sealed bytes it reports (STATS cache_sealed_bytes), divided
   by the number of versions, is the bookkeeping cost per cached version.

Targets are printed as PASS/MISS beside each result; a MISS does not fail the
run (this is a measurement, not a test). The exit status is 1 when a reply was
wrong or missing, or a step could not run.
"""
import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCENARIOS = [("c1 d1", 1, 1), ("c8 d1", 8, 1), ("c64 d1", 64, 1), ("c8 d16", 8, 16)]
BENCH_SECRET = "bench/1k"
VALUE_LEN = 1024
TARGET_RPS_RATIO = 0.80      # agent throughput >= 0.8 x echo, at every concurrency
TARGET_P50_RATIO = 1.30      # agent p50 within 1.3 x echo
TARGET_BYTES_PER_VERSION = 200

h = None  # smc_harness, imported once SMCACHE_BUILD is set


class BenchError(Exception):
    pass


# ---- processes -------------------------------------------------------------------------

def make_agent(secrets, cache_conf):
    """A harness Agent with the bench's own configuration (log_level = warn)."""
    agent = h.Agent(secrets=secrets)
    with open(agent.config, "w") as f:
        f.write(f"[agent]\nsocket = {agent.socket}\nlog_level = warn\nmax_connections = 1024\n"
                f"[backend]\ntype = file\n[file]\npath = {agent.secrets_path}\n"
                f"[cache]\n{cache_conf}\n"
                # The bench is one local user sending as fast as it can.
                f"[limits]\nrequests_per_second_per_uid = 10000000\nburst_per_uid = 10000000\n")
    return agent


def wait_socket(path, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"nothing listening on {path}")


def stop_process(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- the protocol (through the harness's independent Python codec) ---------------------

def read_frame(sock):
    (n,) = struct.unpack(">I", h.recv_exact(sock, 4))
    if n > h.MAX_BODY:
        raise BenchError(f"reply frame of {n} bytes")
    return h.recv_exact(sock, n)


def get_reply(path, secret_id):
    """(Reply, frame length) of one GET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(h.get_frame(secret_id, request_id=7))
        body = read_frame(s)
    reply = h.Reply(body)
    if reply.status != h.ST_OK or reply.request_id != 7:
        raise BenchError(f"GET {secret_id}: status {reply.status}: {reply.message}")
    return reply, 4 + len(body)


def get_many(sock, names, value_len):
    """Pipelined GETs of every name on one connection; checks each reply."""
    sock.sendall(b"".join(h.get_frame(n, request_id=i + 1) for i, n in enumerate(names)))
    seen = set()
    for _ in names:
        reply = h.Reply(read_frame(sock))
        value = reply.get(h.T_SECRET_STRING)
        if reply.status != h.ST_OK or value is None or len(value) != value_len:
            raise BenchError(f"GET reply {reply.request_id}: status {reply.status} "
                             f"{reply.message!r}, value {None if value is None else len(value)} bytes")
        if not 1 <= reply.request_id <= len(names) or reply.request_id in seen:
            raise BenchError(f"unexpected request id {reply.request_id}")
        seen.add(reply.request_id)


def stats(agent):
    reply = agent.request(h.frame(h.OP_STATS, request_id=9))
    out = {}
    for value in reply.all(h.T_STAT):
        sub = dict(h.parse_fields(value))
        out[sub[h.T_STAT_NAME].decode()] = struct.unpack(">Q", sub[h.T_STAT_VALUE])[0]
    return out


# ---- throughput and latency ---------------------------------------------------------------

def run_loadgen(loadgen, path, conns, depth, duration, warmup):
    cmd = [loadgen, "-s", path, "-i", BENCH_SECRET, "-c", str(conns), "-d", str(depth),
           "-t", str(duration), "-w", str(warmup), "-l", str(VALUE_LEN)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 30)
    lines = p.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"errors": -1}
    if p.returncode != 0 or result.get("errors", 0) != 0:
        sys.stderr.write(f"loadgen {' '.join(cmd[1:])}: exit {p.returncode}\n{p.stderr}")
        result["failed"] = True
    return result


def fmt_lat(r):
    return f"{r['p50_us']:.1f}/{r['p99_us']:.0f}/{r['p999_us']:.0f}"


def mark(ok):
    return "PASS" if ok else "MISS"


def throughput_bench(args, loadgen, echo_bin, workdir):
    value = "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789")
                    for _ in range(VALUE_LEN))
    secrets = [h.secret(BENCH_SECRET, [h.version("3c7d9a52-1f0b-4e8a-9d2c-5b6e7f8a9b0c",
                                                 ["AWSCURRENT"], string=value)])]
    agent = make_agent(secrets, "ttl = 3600\n")
    echo = None
    failed = False
    results = {}
    try:
        agent.start()
        reply, agent_frame = get_reply(agent.socket, BENCH_SECRET)
        stages = reply.all(h.T_VERSION_STAGE)
        created = reply.get(h.T_CREATED_DATE)
        echo_sock = os.path.join(workdir, "echo.sock")
        cmd = [echo_bin, "-s", echo_sock, "-a", reply.get(h.T_ARN).decode(),
               "-n", reply.get(h.T_NAME).decode(), "-v", reply.get(h.T_VERSION_ID).decode(),
               "-g", stages[0].decode() if len(stages) == 1 else "",
               "-C", str(struct.unpack(">Q", created)[0] if created else 0),
               "-l", str(len(reply.get(h.T_SECRET_STRING)))]
        if len(stages) > 1:
            raise BenchError("the bench secret should carry one label")
        echo = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        wait_socket(echo_sock, echo)
        _, echo_frame = get_reply(echo_sock, BENCH_SECRET)
        if echo_frame != agent_frame:
            raise BenchError(f"echo reply is {echo_frame} bytes, the agent's {agent_frame}")
        print(f"reply frame: {agent_frame} bytes from both servers "
              f"({VALUE_LEN}-byte value); loadgen threads: {os.cpu_count()}; "
              f"{args.rounds} interleaved rounds of {args.duration:g} s "
              f"(+{args.warmup:g} s warm-up) per server and scenario")
        servers = {"echo": echo_sock, "agent": agent.socket}
        # Warm both (the agent's cache already holds the secret after the GET above).
        for path in servers.values():
            failed |= bool(run_loadgen(loadgen, path, 8, 1, 0.3, 0.0).get("failed"))

        rows = []
        scenarios = [x for x in SCENARIOS if not args.scenarios or
                     x[0].replace(" ", "") in args.scenarios.replace(" ", "").split(",")]
        for si, (label, conns, depth) in enumerate(scenarios):
            runs = {"echo": [], "agent": []}
            for rnd in range(args.rounds):
                order = ["echo", "agent"] if (rnd + si) % 2 == 0 else ["agent", "echo"]
                for name in order:
                    r = run_loadgen(loadgen, servers[name], conns, depth, args.duration,
                                    args.warmup)
                    failed |= bool(r.get("failed"))
                    runs[name].append(r)
            med = {}
            for name in runs:
                med[name] = {k: statistics.median(r.get(k, 0) for r in runs[name])
                             for k in ("rps", "p50_us", "p99_us", "p999_us")}
            round_ratios = [a.get("rps", 0) / e["rps"] if e.get("rps") else 0
                            for e, a in zip(runs["echo"], runs["agent"])]
            rps_ratio = med["agent"]["rps"] / med["echo"]["rps"] if med["echo"]["rps"] else 0
            p50_ratio = med["agent"]["p50_us"] / med["echo"]["p50_us"] if med["echo"]["p50_us"] else 0
            rows.append((label, med, rps_ratio, min(round_ratios), max(round_ratios), p50_ratio))
            results[label] = {"echo": med["echo"], "agent": med["agent"],
                              "rps_ratio": rps_ratio, "p50_ratio": p50_ratio,
                              "round_rps_ratios": round_ratios, "runs": runs}

        print()
        print(f"{'scenario':<8} {'echo req/s':>11} {'agent req/s':>11} {'agent/echo':>10} "
              f"{'(rounds)':>11} {'>=0.80':>6}  {'echo p50/p99/p99.9 us':>22} "
              f"{'agent p50/p99/p99.9 us':>22} {'p50 x':>6} {'<=1.30':>6}")
        for label, med, ratio, lo, hi, p50r in rows:
            print(f"{label:<8} {med['echo']['rps']:>11,.0f} {med['agent']['rps']:>11,.0f} "
                  f"{ratio:>10.2f} {lo:>5.2f}-{hi:<5.2f} {mark(ratio >= TARGET_RPS_RATIO):>6}  "
                  f"{fmt_lat(med['echo']):>22} {fmt_lat(med['agent']):>22} "
                  f"{p50r:>6.2f} {mark(p50r <= TARGET_P50_RATIO):>6}")
        st = stats(agent)
        print(f"agent STATS: cache_hits {st.get('cache_hits')}, cache_misses "
              f"{st.get('cache_misses')}, replies_ok {st.get('replies_ok')}, other replies "
              f"{sum(v for k, v in st.items() if k.startswith('replies_') and k != 'replies_ok')}")
        if st.get("cache_misses") != 1:
            print("note: the agent fetched the bench secret more than once during the runs")
        agent.stop(check=True)
    finally:
        stop_process(echo)
        agent.close()
    return failed, results


# ---- memory per cached version -----------------------------------------------------------

def mem_snapshot(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["VmRSS"] = int(line.split()[1]) * 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("Private_Dirty", "Anonymous"):
                    out[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def mem_secrets(prefix, first, count, rnd):
    out = []
    for i in range(first, first + count):
        value = base64.b64encode(rnd.randbytes(VALUE_LEN)).decode()[:VALUE_LEN]
        out.append(h.secret(f"{prefix}/{i:05d}", [
            h.version(f"{i:08x}-7b3c-4d5e-8f90-{i:012x}", ["AWSCURRENT"], string=value)]))
    return out


def load_secrets(agent, secrets, chunk):
    """Fetches every secret once, `chunk` at a time, each chunk alone in the secrets file.

    The file backend re-reads and parses its whole file for every fetch, so the
    file holds only the chunk being fetched; fetched versions stay cached (ttl 1 h).
    """
    with agent.connect(timeout=60) as s:
        for i in range(0, len(secrets), chunk):
            part = secrets[i:i + chunk]
            agent.write_secrets(part)
            get_many(s, [x["Name"] for x in part], VALUE_LEN)


def memory_run(args, max_entries, secrets, warm):
    agent = make_agent(warm, f"ttl = 3600\nmax_entries = {max_entries}\nmax_bytes = 1G\n")
    try:
        agent.start()
        # Warm-up: a chunk of other secrets, so code paths, buffers and the
        # parser's transient peak are all in place before the baseline.
        load_secrets(agent, warm, args.mem_chunk)
        before, st0 = mem_snapshot(agent.pid()), stats(agent)
        t0 = time.monotonic()
        load_secrets(agent, secrets, args.mem_chunk)
        load_s = time.monotonic() - t0
        after, st1 = mem_snapshot(agent.pid()), stats(agent)
        out = {"before": before, "after": after, "load_s": load_s,
               "versions": st1["cache_entries"] - st0["cache_entries"],
               "sealed_bytes": st1["cache_sealed_bytes"] - st0["cache_sealed_bytes"],
               "fetches": st1["cache_fetches"] - st0["cache_fetches"]}
        out["delta"] = {k: after[k] - before[k] for k in after if k in before}
        if max_entries < len(secrets):
            out["full_file_fetch_s"] = full_file_fetch(agent, secrets)
        agent.stop(check=True)
        return out
    finally:
        agent.close()


def full_file_fetch(agent, secrets):
    """Seconds per fetch when the file holds every secret (the cost the chunks avoid)."""
    agent.write_secrets(secrets)
    size = os.path.getsize(agent.secrets_path)
    times = []
    with agent.connect(timeout=120) as s:
        for name in (secrets[0]["Name"], secrets[len(secrets) // 2]["Name"], secrets[-2]["Name"]):
            t0 = time.monotonic()
            get_many(s, [name], VALUE_LEN)
            times.append(time.monotonic() - t0)
    return statistics.median(times), size


def memory_bench(args):
    n = args.mem_secrets
    rnd = random.Random(2)
    warm = mem_secrets("bench/warm", 0, args.mem_chunk, rnd)
    secrets = mem_secrets("bench/mem", 0, n, rnd)
    full = memory_run(args, n + 2 * args.mem_chunk, secrets, warm)
    # Control: the same loading with a cache that keeps one version, to show what
    # the loading itself leaves behind (freed-but-retained heap, parser peaks).
    control = memory_run(args, 1, secrets, warm)

    fd, cd = full["delta"], control["delta"]
    versions = full["versions"]
    print(f"loaded {versions} versions of {VALUE_LEN} B in {full['load_s']:.1f} s "
          f"({full['fetches']} fetches, {versions / full['load_s']:,.0f}/s; the file held "
          f"{args.mem_chunk} secrets at a time); sealed bytes "
          f"{full['sealed_bytes']:,} ({full['sealed_bytes'] / versions:.0f} per version)")
    print()
    print(f"{'measure':<14} {'full cache':>12} {'control':>12} {'per version':>12} "
          f"{'control-adj.':>12} {'<=' + str(TARGET_BYTES_PER_VERSION):>6}")
    per = {}
    for key in ("Anonymous", "Private_Dirty", "VmRSS"):
        if key not in fd:
            continue
        raw = (fd[key] - full["sealed_bytes"]) / versions
        adj = (fd[key] - cd[key] - full["sealed_bytes"]) / versions
        per[key] = {"raw": raw, "adjusted": adj}
        print(f"{key:<14} {fd[key]:>12,} {cd[key]:>12,} {raw:>12.0f} {adj:>12.0f} "
              f"{mark(raw <= TARGET_BYTES_PER_VERSION) if key == 'Anonymous' else '':>6}")
    print("per version = (growth - sealed bytes) / versions; control-adj. also subtracts the "
          "growth of an agent that\nloaded the same secrets with max_entries = 1 "
          "(memory the loading itself retains). Primary: Anonymous, raw.")
    fetch_s, size = control["full_file_fetch_s"]
    print(f"file backend: one fetch from the full {n}-secret file ({size / 2**20:.1f} MiB) "
          f"takes {fetch_s * 1e3:.0f} ms: loading {n} secrets from it would take "
          f"~{fetch_s * n:.0f} s, hence the chunks")
    return {"full": full, "control": control, "per_version": per}


# ---- main -------------------------------------------------------------------------------

def main():
    global h, VALUE_LEN
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=1.5, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds per run")
    ap.add_argument("--scenarios", help="only these, e.g. c1d1,c8d16")
    ap.add_argument("--value-len", type=int, default=VALUE_LEN,
                    help="bytes of the secret value (the targets are for 1024)")
    ap.add_argument("--mem-secrets", type=int, default=10000)
    ap.add_argument("--mem-chunk", type=int, default=20,
                    help="secrets in the file at a time while loading")
    ap.add_argument("--skip", action="append", default=[], choices=["seal", "throughput", "memory"])
    ap.add_argument("--json", help="also write every result to this file")
    args = ap.parse_args()
    VALUE_LEN = args.value_len

    build = args.build if os.path.isabs(args.build) else os.path.join(ROOT, args.build)
    os.environ["SMCACHE_BUILD"] = build
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import smc_harness
    h = smc_harness

    bins = {name: os.path.join(build, "bench", name) for name in ("loadgen", "echo_server", "bench_seal")}
    for path in list(bins.values()) + [h.SMCACHED]:
        if not os.access(path, os.X_OK):
            print(f"run_bench: {path} is missing: run `make bench`", file=sys.stderr)
            return 1

    failed = False
    report = {}
    workdir = tempfile.mkdtemp(prefix="smc-bench-")
    try:
        if "seal" not in args.skip:
            print("== seal (tests/bench/bench_seal.c)")
            p = subprocess.run([bins["bench_seal"]], capture_output=True, text=True, timeout=120)
            print(p.stdout, end="")
            if p.returncode != 0:
                print(f"bench_seal failed ({p.returncode}): {p.stderr}")
                failed = True
            print()
        if "throughput" not in args.skip:
            print("== throughput and latency: smcached vs echo_server (the physical limit)")
            f, report["throughput"] = throughput_bench(args, bins["loadgen"], bins["echo_server"],
                                                       workdir)
            failed |= f
            print()
        if "memory" not in args.skip:
            print(f"== memory per cached version ({args.mem_secrets} secrets of {VALUE_LEN} B)")
            report["memory"] = memory_bench(args)
            print()
    except (BenchError, AssertionError, OSError, subprocess.SubprocessError) as e:
        print(f"run_bench: {e}", file=sys.stderr)
        failed = True
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if failed:
        print("run_bench: FAILED: some replies were wrong or missing, or a step failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
