#!/usr/bin/env python3
"""make bench: smcached side by side with the physical limit and its peers, in one run.

Sections (tests/bench/README.md says what each number is): seal (bench_seal);
throughput (echo_server = the limit, redis-server, smcached over Unix sockets,
value sizes x connections x pipelining, hot and spread access, interleaved
rounds); scaling (throughput vs connections); cli (cold processes: smcache,
boto3, aws CLI); http (the [http] door vs nginx, wrk); fleet (upstream calls
through one agent vs naive vs a simulated per-process cache); memory (RSS and
VmLck vs cached entries, smcached and redis-server); filemem (off by default).

Writes docs/bench/RESULTS.md, results.json and PNG charts (bench_report.py).
Targets are marked beside each result; a miss does not fail the run (this is
a measurement, not a test). The exit status is 1 when a reply was wrong or
missing, or a step could not run; a missing peer is skipped with a note.
"""
import argparse
import base64
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCENARIOS = [("c1 d1", 1, 1), ("c8 d1", 8, 1), ("c64 d1", 64, 1), ("c8 d16", 8, 16)]
BENCH_SECRET = "bench/1k"
VALUE_LEN = 1024
TARGET_RPS_RATIO = 0.80      # agent throughput >= 0.8 x echo, at every concurrency
TARGET_P50_RATIO = 1.30      # agent p50 within 1.3 x echo
TARGET_BYTES_PER_VERSION = 200

h = None  # smc_harness, imported once SMCACHE_BUILD is set
bench_peers = None  # tests/bench/bench_peers.py, imported in main


class BenchError(Exception):
    pass


# ---- processes -------------------------------------------------------------------------

def make_agent(secrets, cache_conf, extra=""):
    """A harness Agent with the bench's own configuration (log_level = warn)."""
    agent = h.Agent(secrets=secrets)
    with open(agent.config, "w") as f:
        f.write(f"[agent]\nsocket = {agent.socket}\nlog_level = warn\nmax_connections = 1024\n"
                f"[backend]\ntype = file\n[file]\npath = {agent.secrets_path}\n"
                f"[cache]\n{cache_conf}\n"
                # The bench is one local user sending as fast as it can.
                f"[limits]\nrequests_per_second_per_uid = 10000000\nburst_per_uid = 10000000\n"
                f"upstream_per_second_per_uid = 1000000\nupstream_burst_per_uid = 1000000\n{extra}")
    return agent


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


# ---- throughput and latency: echo (the limit), redis, the agent ---------------------------

SIZES = [64, 1024, 65536]
CLOSED = [("c1", 1, 1), ("c8", 8, 1), ("c64", 64, 1), ("c8x16", 8, 16)]
SPREAD_CACHED = 2000
SCALING_CLIENTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
HOT = "bench/hot-{}"
SPREAD = "bench/s{:04d}"


def bench_value(size, salt=0):
    rnd = random.Random(size * 1000003 + salt)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(size))


def run_loadgen(loadgen, path, conns, depth, duration, warmup, value_len, secret_id=None,
                id_file=None, redis=False):
    cmd = [loadgen, "-s", path, "-c", str(conns), "-d", str(depth), "-t", str(duration),
           "-w", str(warmup), "-l", str(value_len)]
    cmd += ["-f", id_file] if id_file else ["-i", secret_id]
    if redis:
        cmd.append("-R")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 30)
    lines = p.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"errors": -1}
    if p.returncode != 0 or result.get("errors", 0) != 0:
        sys.stderr.write(f"loadgen {' '.join(cmd[1:])}: exit {p.returncode}\n{p.stderr}")
        result["failed"] = True
    return result


def cpu_seconds(pid):
    """User + system CPU seconds a process has used (from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def mark(ok):
    return "PASS" if ok else "MISS"


def start_echo(echo_bin, workdir, tag, reply):
    """An echo_server answering with a reply of the agent's exact size for this secret."""
    stages = reply.all(h.T_VERSION_STAGE)
    created = reply.get(h.T_CREATED_DATE)
    value = reply.get(h.T_SECRET_STRING)
    path = os.path.join(workdir, f"echo-{tag}.sock")
    cmd = [echo_bin, "-s", path, "-a", reply.get(h.T_ARN).decode(),
           "-n", reply.get(h.T_NAME).decode(), "-v", reply.get(h.T_VERSION_ID).decode(),
           "-g", stages[0].decode() if len(stages) == 1 else "",
           "-C", str(struct.unpack(">Q", created)[0] if created else 0), "-l", str(len(value))]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    bench_peers.wait_unix(path, proc)
    return proc, path


class Servers:
    """The three servers of the throughput bench, filled with the same values."""

    def __init__(self, args, bins, workdir):
        self.args, self.bins, self.workdir = args, bins, workdir
        self.agent = None
        self.redis = None
        self.echo = {}          # tag -> (proc, socket)
        self.notes = []

    def start(self):
        hot = [h.secret(HOT.format(n), [h.version(f"{n:08x}-1f0b-4e8a-9d2c-5b6e7f8a9b0c",
                                                  ["AWSCURRENT"], string=bench_value(n))])
               for n in SIZES]
        spread = [h.secret(SPREAD.format(i), [h.version(f"{i:08x}-7b3c-4d5e-8f90-{i:012x}",
                                                        ["AWSCURRENT"],
                                                        string=bench_value(1024, i + 1))])
                  for i in range(SPREAD_CACHED)]
        self.agent = make_agent([], f"ttl = 3600\nmax_entries = {SPREAD_CACHED + 100}\n"
                                    "max_bytes = 1G\n" +
                                "".join(line + "\n" for line in self.args.agent_cache))
        self.agent.start()
        load_secrets(self.agent, spread, 50, 1024)
        self.agent.write_secrets(hot)
        frames = {}
        for n in SIZES:
            reply, frames[n] = get_reply(self.agent.socket, HOT.format(n))
            self.echo[n] = start_echo(self.bins["echo_server"], self.workdir, n, reply)
        reply, frames["spread"] = get_reply(self.agent.socket, SPREAD.format(0))
        self.echo["spread"] = start_echo(self.bins["echo_server"], self.workdir, "spread", reply)
        for tag, (_, path) in self.echo.items():
            _, ef = get_reply(path, HOT.format(tag) if tag != "spread" else SPREAD.format(0))
            if ef != frames[tag]:
                raise BenchError(f"echo reply for {tag} is {ef} bytes, the agent's {frames[tag]}")
        self.frames = frames
        self.id_file = os.path.join(self.workdir, "spread-ids")
        with open(self.id_file, "w") as f:
            f.write("".join(SPREAD.format(i) + "\n" for i in range(SPREAD_CACHED)))
        if bench_peers.have("redis"):
            self.redis = bench_peers.Redis(self.workdir).start()
            self.redis.set_many([(HOT.format(n), bench_value(n).encode()) for n in SIZES])
            self.redis.set_many([(SPREAD.format(i), bench_value(1024, i + 1).encode())
                                 for i in range(SPREAD_CACHED)])
        else:
            self.notes.append("redis-server is not installed (`make deps-bench`): its column "
                              "is empty")

    def targets(self):
        return ["echo"] + (["redis"] if self.redis else []) + ["agent"]

    def run(self, server, tag, conns, depth, duration, warmup):
        size = 1024 if tag == "spread" else tag
        kw = {"id_file": self.id_file} if tag == "spread" else {"secret_id": HOT.format(tag)}
        path = {"echo": self.echo[tag][1], "agent": self.agent.socket,
                "redis": self.redis.socket if self.redis else None}[server]
        pid = {"echo": lambda: self.echo[tag][0].pid, "agent": lambda: self.agent.pid(),
               "redis": lambda: self.redis.proc.pid}[server]()
        before = cpu_seconds(pid)
        r = run_loadgen(self.bins["loadgen"], path, conns, depth, duration, warmup, size,
                        redis=(server == "redis"), **kw)
        after = cpu_seconds(pid)
        # The server's CPU per reply (warm-up included on both sides): unlike req/s it
        # hardly moves with other work on the machine, so it shows the server's own cost.
        if before is not None and after is not None and r.get("received"):
            r["cpu_us_per_req"] = (after - before) * 1e6 / r["received"]
        return r

    def stop(self):
        for proc, _ in self.echo.values():
            bench_peers.stop(proc)
        if self.redis:
            self.redis.stop()
        if self.agent:
            try:
                self.agent.stop(check=True)
            finally:
                self.agent.close()


def med(runs, key):
    return statistics.median(r.get(key, 0) for r in runs) if runs else 0.0


def summarize(runs, names):
    """Medians per server, ratios to echo per round (min-max) and of the medians."""
    out = {"servers": {}}
    for name in names:
        out["servers"][name] = {k: med(runs[name], k) for k in ("rps", "p50_us", "p99_us",
                                                                "p999_us", "cpu_us_per_req")}
        out["servers"][name]["rounds_rps"] = [r.get("rps", 0) for r in runs[name]]
    e = out["servers"]["echo"]
    for name in names:
        if name == "echo":
            continue
        per = [a.get("rps", 0) / x["rps"] if x.get("rps") else 0
               for x, a in zip(runs["echo"], runs[name])]
        s = out["servers"][name]
        s["ratio"] = s["rps"] / e["rps"] if e["rps"] else 0.0
        s["ratio_min"], s["ratio_max"] = (min(per), max(per)) if per else (0.0, 0.0)
        s["p50_ratio"] = s["p50_us"] / e["p50_us"] if e["p50_us"] else 0.0
    return out


def throughput_bench(args, srv):
    """Every (value size, connections, depth) row, interleaved rounds of all servers."""
    rows = []
    for size in SIZES:
        for label, c, d in CLOSED:
            rows.append({"workload": f"{size} B hot {label}", "size": size, "access": "hot",
                         "tag": size, "conns": c, "depth": d, "label": label})
    rows.append({"workload": "1024 B spread c8x16", "size": 1024, "access": "spread",
                 "tag": "spread", "conns": 8, "depth": 16, "label": "c8x16"})
    if args.quick:
        rows = [r for r in rows if r["size"] == 1024]
    names = srv.targets()
    failed = False
    print(f"servers: {', '.join(names)}; {args.rounds} interleaved rounds of {args.duration:g} s "
          f"(+{args.warmup:g} s warm-up); reply frames {srv.frames} bytes (agent = echo)")
    print(f"{'workload':<22} " + " ".join(f"{n + ' req/s':>12}" for n in names) +
          f" {'agent/limit':>11} {'(rounds)':>11} {'>=0.80':>6} {'redis/limit':>11} "
          f"{'agent p50 us':>12} {'p50 x':>6} {'cpu us/req limit/agent':>22}")
    for ri, row in enumerate(rows):
        runs = {n: [] for n in names}
        for rnd in range(args.rounds):
            k = (rnd + ri) % len(names)
            for name in names[k:] + names[:k]:
                r = srv.run(name, row["tag"], row["conns"], row["depth"], args.duration,
                            args.warmup)
                failed |= bool(r.get("failed"))
                runs[name].append(r)
        row.update(summarize(runs, names))
        a = row["servers"]["agent"]
        rr = row["servers"].get("redis", {}).get("ratio")
        print(f"{row['workload']:<22} " +
              " ".join(f"{row['servers'][n]['rps']:>12,.0f}" for n in names) +
              f" {a['ratio']:>11.2f} {a['ratio_min']:>5.2f}-{a['ratio_max']:<5.2f} "
              f"{mark(a['ratio'] >= TARGET_RPS_RATIO):>6} "
              f"{'-' if rr is None else format(rr, '.2f'):>11} {a['p50_us']:>12.1f} "
              f"{a['p50_ratio']:>6.2f} "
              f"{row['servers']['echo']['cpu_us_per_req']:>10.2f} / {a['cpu_us_per_req']:<9.2f}",
              flush=True)
    return failed, rows


def scaling_bench(args, srv):
    """Throughput vs connections (1 KiB hot, no pipelining), one round per point."""
    names = srv.targets()
    points = []
    failed = False
    clients = [c for c in SCALING_CLIENTS if not args.quick or c in (1, 8, 64)]
    for i, c in enumerate(clients):
        pt = {"clients": c}
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            r = srv.run(name, 1024, c, 1, args.scaling_duration, args.warmup)
            failed |= bool(r.get("failed"))
            pt[name] = {"rps": r.get("rps", 0), "p50_us": r.get("p50_us", 0),
                        "p99_us": r.get("p99_us", 0)}
        points.append(pt)
        print(f"c{c:<4} " + "  ".join(f"{n} {pt[n]['rps']:>9,.0f} req/s p50 {pt[n]['p50_us']:>7.1f} us"
                                      for n in names), flush=True)
    return failed, points


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


def load_secrets(agent, secrets, chunk, value_len=None):
    """Fetches every secret once, `chunk` at a time, each chunk alone in the secrets file.

    The file backend re-reads and parses its whole file for every fetch, so the
    file holds only the chunk being fetched; fetched versions stay cached (ttl 1 h).
    """
    with agent.connect(timeout=60) as s:
        for i in range(0, len(secrets), chunk):
            part = secrets[i:i + chunk]
            agent.write_secrets(part)
            get_many(s, [x["Name"] for x in part], value_len or VALUE_LEN)


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




# ---- HTTP front door (issue 12) vs nginx, driven by wrk ------------------------------------

HTTP_TOKEN = "bench-ssrf-token-0123456789abcdef"
HTTP_CONNS = [1, 8, 64]


def http_bench(args, workdir):
    """wrk against the agent's [http] door and against nginx serving the same bytes."""
    out = {"rows": [], "note": ""}
    missing = [n for n in ("wrk", "nginx") if not bench_peers.have(n)]
    if missing:
        out["note"] = f"skipped: {' and '.join(missing)} not installed (`make deps-bench`)"
        print(out["note"])
        return False, out
    port = bench_peers.free_port()
    secret = HOT.format(1024)
    agent = make_agent([h.secret(secret, [h.version("00000400-1f0b-4e8a-9d2c-5b6e7f8a9b0c",
                                                    ["AWSCURRENT"], string=bench_value(1024))])],
                       "ttl = 3600\n", extra=f"[http]\nlisten = 127.0.0.1:{port}\n")
    agent.env["AWS_TOKEN"] = HTTP_TOKEN
    nginx = None
    failed = False
    try:
        try:
            agent.start()
            bench_peers.wait_tcp(port, agent.proc, timeout=5)
        except (AssertionError, RuntimeError) as e:
            log = str(e)
            out["note"] = ("skipped: this smcached has no HTTP front door (`[http] listen`, "
                           "issue 12, not in this build)" if "http" in log.lower() else
                           f"skipped: the agent did not start with [http]: {log[-300:]}")
            print(out["note"])
            return False, out
        url = f"http://127.0.0.1:{port}/secretsmanager/get?secretId={secret}"
        req = urllib.request.Request(url, headers={"X-Aws-Parameters-Secrets-Token": HTTP_TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        if json.loads(body).get("SecretString") != bench_value(1024):
            raise BenchError("the HTTP door answered a different value")
        nginx = bench_peers.Nginx(workdir, body).start()
        nurl = f"http://127.0.0.1:{nginx.port}/secretsmanager/get?secretId={secret}"
        with urllib.request.urlopen(nurl, timeout=10) as r:
            if r.read() != body:
                raise BenchError("nginx serves different bytes")
        hdr = [f"X-Aws-Parameters-Secrets-Token: {HTTP_TOKEN}"]
        print(f"body {len(body)} bytes from both; wrk, {args.rounds} interleaved rounds of "
              f"{args.duration:g} s")
        for c in HTTP_CONNS:
            runs = {"nginx": [], "agent": []}
            for rnd in range(args.rounds):
                for name in (["nginx", "agent"] if rnd % 2 == 0 else ["agent", "nginx"]):
                    r = bench_peers.run_wrk(nurl if name == "nginx" else url, c,
                                            max(1, round(args.duration)), hdr)
                    if r["errors"]:
                        sys.stderr.write(f"wrk {name} c{c}: {r['errors']} errors "
                                         f"{r.get('stderr', '')}\n")
                        failed = True
                    runs[name].append(r)
            row = {"conns": c, "nginx": {k: med(runs["nginx"], k) for k in ("rps", "p50_us")},
                   "agent": {k: med(runs["agent"], k) for k in ("rps", "p50_us")}}
            per = [a["rps"] / n["rps"] if n["rps"] else 0
                   for n, a in zip(runs["nginx"], runs["agent"])]
            row["ratio"] = row["agent"]["rps"] / row["nginx"]["rps"] if row["nginx"]["rps"] else 0
            row["ratio_min"], row["ratio_max"] = min(per), max(per)
            row["p50_ratio"] = (row["agent"]["p50_us"] / row["nginx"]["p50_us"]
                                if row["nginx"]["p50_us"] else 0)
            out["rows"].append(row)
            print(f"c{c:<3} nginx {row['nginx']['rps']:>9,.0f} req/s  agent "
                  f"{row['agent']['rps']:>9,.0f} req/s  ratio {row['ratio']:.2f} "
                  f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})  p50 x {row['p50_ratio']:.2f}",
                  flush=True)
        out["body_bytes"] = len(body)
        agent.stop(check=True)
    finally:
        if nginx:
            nginx.stop()
        agent.close()
    return failed, out


# ---- cold processes: smcache get vs boto3 vs the aws CLI ------------------------------------

def time_commands(cmds, env):
    """{label: {median_ms, min_ms, max_ms, runs}}: hyperfine when installed, else a loop."""
    out = {}
    for label, argv, runs in cmds:
        if bench_peers.have("hyperfine"):
            js = os.path.join(tempfile.gettempdir(), f"smc-bench-hf-{os.getpid()}.json")
            cmd = [bench_peers.which("hyperfine"), "-N", "--warmup", "1", "--runs", str(runs),
                   "--export-json", js, "--style", "none", subprocess.list2cmdline(argv)]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            if p.returncode != 0:
                raise BenchError(f"hyperfine {label}: {p.stderr[-500:]}")
            with open(js) as f:
                t = [x * 1e3 for x in json.load(f)["results"][0]["times"]]
            os.unlink(js)
            tool = "hyperfine"
        else:
            t = []
            for i in range(runs + 1):
                t0 = time.perf_counter()
                p = subprocess.run(argv, capture_output=True, env=env, timeout=120)
                if p.returncode != 0:
                    raise BenchError(f"{label}: exit {p.returncode}: {p.stderr[-300:]!r}")
                if i:
                    t.append((time.perf_counter() - t0) * 1e3)
            tool = "loop"
        out[label] = {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t),
                      "runs": len(t), "tool": tool}
        print(f"{label:<40} median {out[label]['median_ms']:>8.1f} ms  "
              f"({out[label]['min_ms']:.1f}-{out[label]['max_ms']:.1f}, {len(t)} runs, {tool})",
              flush=True)
    return out


def cli_bench(args, srv):
    import aws_moto
    if not aws_moto.have_moto():
        print("skipped: moto_server or boto3 not installed")
        return {"note": "skipped: moto_server or boto3 not installed"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": aws_moto.FAKE_KEY,
                "AWS_SECRET_ACCESS_KEY": aws_moto.FAKE_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "SMCACHE_SOCKET": srv.agent.socket})
    with aws_moto.Moto() as moto:
        moto.client().create_secret(Name="bench/cli", SecretString=bench_value(1024))
        py = ("import boto3; c = boto3.client('secretsmanager', endpoint_url='%s', "
              "region_name='us-east-1'); c.get_secret_value(SecretId='bench/cli')" % moto.url)
        cmds = [("smcache get (agent, cached)", [h.SMCACHE, "get", HOT.format(1024)], args.cli_runs),
                ("python3 + boto3 get_secret_value (moto)", [sys.executable, "-c", py],
                 max(3, args.cli_runs // 4))]
        if shutil.which("aws"):
            cmds.append(("aws secretsmanager get-secret-value (moto)",
                         [shutil.which("aws"), "--endpoint-url", moto.url, "secretsmanager",
                          "get-secret-value", "--secret-id", "bench/cli"],
                         max(3, args.cli_runs // 6)))
        return time_commands(cmds, env)


# ---- boto3 per call: through the SDK endpoint, to moto, to a canned answer ------------------

SDK_CHILD = r"""
import json, statistics, sys, time
import boto3
url, secret_id, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1")
for _ in range(20):                                    # warm-up: connections, signer, parser
    c.get_secret_value(SecretId=secret_id)
lat = []
t0 = time.perf_counter()
for _ in range(calls):
    t = time.perf_counter()
    c.get_secret_value(SecretId=secret_id)
    lat.append((time.perf_counter() - t) * 1e6)
total = time.perf_counter() - t0
lat.sort()
print(json.dumps({"calls_per_s": calls / total, "p50_us": lat[len(lat) // 2],
                  "p99_us": lat[int(len(lat) * 0.99) - 1], "calls": calls}))
"""


def _canned_server(body):
    """A minimal HTTP server answering every request with one GetSecretValue body: the
    client-side limit (what boto3 itself costs per call)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def setup(self):
            super().setup()
            # Headers and body go out in two writes: without TCP_NODELAY the body waits
            # for the client's delayed ACK (40 ms), and the "limit" would measure that.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def sdk_bench(args, workdir):
    """boto3 get_secret_value per call, in one warm process: through the agent's Secrets
    Manager endpoint ([endpoint] listen), directly to moto_server, and to a canned-answer
    server (the client-side limit)."""
    import aws_moto
    if not aws_moto.have_moto():
        print("skipped: moto_server or boto3 not installed")
        return {"note": "skipped: moto_server or boto3 not installed"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": aws_moto.FAKE_KEY, "AWS_SECRET_ACCESS_KEY": aws_moto.FAKE_SECRET,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    calls = args.sdk_calls
    out = {"calls": calls, "rows": {}}
    with aws_moto.Moto() as moto:
        sm = moto.client()
        sm.create_secret(Name="bench/sdk", SecretString=bench_value(1024))
        body = json.dumps({k: (v.timestamp() if hasattr(v, "timestamp") else v)
                           for k, v in sm.get_secret_value(SecretId="bench/sdk").items()
                           if k != "ResponseMetadata"}).encode()
        port = bench_peers.free_port()
        agent = aws_moto.AwsAgent(endpoint=moto.url, cache_extra="negative_ttl = 0\nttl = 3600\n"
                                  f"[endpoint]\nlisten = 127.0.0.1:{port}\n")
        canned = _canned_server(body)
        try:
            agent.start()
            targets = [("boto3 -> smcached [endpoint] (cached)", f"http://127.0.0.1:{port}"),
                       ("boto3 -> moto_server", moto.url),
                       ("boto3 -> canned answer (client-side limit)",
                        f"http://127.0.0.1:{canned.server_address[1]}")]
            for label, url in targets:
                p = subprocess.run([sys.executable, "-c", SDK_CHILD, url, "bench/sdk", str(calls)],
                                   env=env, capture_output=True, text=True, timeout=600)
                if p.returncode != 0:
                    raise BenchError(f"{label}: {p.stderr.strip()[-300:]}")
                out["rows"][label] = json.loads(p.stdout.strip().splitlines()[-1])
                r = out["rows"][label]
                print(f"{label:<45} {r['calls_per_s']:>8,.0f} calls/s  p50 {r['p50_us'] / 1000:.2f} ms"
                      f"  p99 {r['p99_us'] / 1000:.2f} ms")
        finally:
            canned.shutdown()
            agent.close()
    return out



# ---- upstream calls of a fleet-like workload ------------------------------------------------

def _reader(sock_path, ids, seconds, pause, q):
    reads = errors = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(sock_path)
            end = time.monotonic() + seconds
            rid = 0
            while time.monotonic() < end:
                for sid in ids:
                    rid += 1
                    s.sendall(h.get_frame(sid, request_id=rid))
                    reply = h.Reply(read_frame(s))
                    if reply.status != h.ST_OK or reply.request_id != rid:
                        errors += 1
                    reads += 1
                time.sleep(pause)
    except Exception:  # noqa: BLE001 - counted, reported by the parent
        errors += 1
    q.put((reads, errors))


def fleet_bench(args):
    import aws_moto
    import multiprocessing
    if not aws_moto.have_moto():
        return {"note": "skipped: moto_server or boto3 not installed"}
    n, m, secs, ttl = args.fleet_readers, args.fleet_secrets, args.fleet_seconds, args.fleet_ttl
    with aws_moto.Moto() as moto, aws_moto.FaultProxy(moto.port) as proxy:
        sm = moto.client()
        ids = [f"fleet/{i:03d}" for i in range(m)]
        for sid in ids:
            sm.create_secret(Name=sid, SecretString=bench_value(256, len(sid)))
        agent = aws_moto.AwsAgent(endpoint=proxy.url, cache_extra=f"ttl = {ttl}\n")
        with open(agent.config) as f:
            conf = f.read().replace("log_level = debug", "log_level = warn")
        with open(agent.config, "w") as f:
            f.write(conf + "[limits]\nrequests_per_second_per_uid = 10000000\n"
                    "burst_per_uid = 10000000\n")
        try:
            agent.start()
            proxy.clear()
            ctx = multiprocessing.get_context("fork")
            q = ctx.Queue()
            procs = [ctx.Process(target=_reader, args=(agent.socket, ids, secs, 0.05, q))
                     for _ in range(n)]
            t0 = time.monotonic()
            for p in procs:
                p.start()
            res = [q.get(timeout=secs + 60) for _ in procs]
            for p in procs:
                p.join()
            wall = time.monotonic() - t0
            counts = {k: v for k, v in proxy.counts.items()}
            agent.stop(check=True)
        finally:
            agent.close()
    reads = sum(r for r, _ in res)
    errors = sum(e for _, e in res)
    sim = bench_peers.fleet_simulation(n, m, secs, ttl)
    out = {"readers": n, "secrets": m, "seconds": secs, "ttl": ttl, "wall_s": wall,
           "reads": reads, "errors": errors, "agent_calls": counts,
           "agent_total": sum(counts.values()), "naive_total": reads, "simulated": sim}
    print(f"{n} reader processes x {m} secrets for {secs} s (agent ttl = {ttl} s; the simulated "
          f"library's secret_refresh_interval = {ttl} s)")
    print(f"  reads served: {reads:,} ({errors} errors)")
    print(f"  naive (one GetSecretValue per read):           {reads:>9,} upstream calls")
    print(f"  per-process SecretCache, simulated:            {sim['total']:>9,} "
          f"({sim['GetSecretValue']} GetSecretValue + {sim['DescribeSecret']} DescribeSecret)")
    print(f"  one smcached (counted at the proxy):           {out['agent_total']:>9,} {counts}")
    return out


# ---- memory vs cached entries: the agent (aws backend) and redis ---------------------------

MEM_POINTS = [1000, 10000, 100000]


def _mem_point(pid, entries, extra=None):
    m = bench_peers.proc_memory(pid)
    d = {"entries": entries, "rss": m.get("VmRSS", 0), "lck": m.get("VmLck", 0),
         "rss_anon": m.get("RssAnon", 0), "rss_file": m.get("RssFile", 0)}
    d.update(extra or {})
    return d


def agent_memory_bench(args, bins, workdir):
    import aws_moto
    points = [p for p in MEM_POINTS if p <= args.mem_max]
    fake = bench_peers.FakeUpstream(bins["fake_upstream"], workdir, 1024).start()
    agent = aws_moto.AwsAgent(endpoint=fake.url,
                              cache_extra=f"ttl = 3600\nmax_entries = {points[-1] + 1000}\n"
                                          "max_bytes = 2G\nnegative_ttl = 0\n",
                              aws_extra="max_connections = 16\n")
    with open(agent.config) as f:
        conf = f.read().replace("log_level = debug", "log_level = warn")
    with open(agent.config, "w") as f:
        f.write(conf + "[limits]\nrequests_per_second_per_uid = 10000000\n"
                "burst_per_uid = 10000000\nupstream_per_second_per_uid = 1000000\n"
                "upstream_burst_per_uid = 1000000\n")
    out = {"points": []}
    try:
        agent.start()
        time.sleep(1.0)
        out["idle"] = _mem_point(agent.pid(), 0)
        with agent.connect(timeout=120) as s:
            get_many(s, ["mem/warm"], 1024)
            loaded = 0
            t0 = time.monotonic()
            for target in points:
                while loaded < target:
                    k = min(200, target - loaded)
                    get_many(s, [f"mem/{i:06d}" for i in range(loaded, loaded + k)], 1024)
                    loaded += k
                st = stats(agent)
                pt = _mem_point(agent.pid(), loaded, {"sealed": st.get("cache_sealed_bytes", 0),
                                                      "cache_entries": st.get("cache_entries", 0),
                                                      "load_s": time.monotonic() - t0})
                out["points"].append(pt)
                print(f"  agent {loaded:>7,} entries: RSS {pt['rss'] / 2**20:>7.1f} MiB, "
                      f"VmLck {pt['lck'] / 2**20:>7.1f} MiB, sealed {pt['sealed'] / 2**20:.1f} MiB "
                      f"({pt['load_s']:.0f} s)", flush=True)
        agent.stop(check=True)
    finally:
        agent.close()
        fake.stop()
    out["upstream_calls"] = fake.counts
    return out


def redis_memory_bench(args, workdir):
    if not bench_peers.have("redis"):
        return {"note": "skipped: redis-server not installed (`make deps-bench`)"}
    points = [p for p in MEM_POINTS if p <= args.mem_max]
    r = bench_peers.Redis(os.path.join(workdir)).start()
    out = {"points": []}
    try:
        time.sleep(1.0)
        out["idle"] = _mem_point(r.pid(), 0)
        loaded = 0
        for target in points:
            r.set_many([(f"mem/{i:06d}", bench_peers.fake_value("x", 1024).encode())
                        for i in range(loaded, target)])
            loaded = target
            pt = _mem_point(r.pid(), loaded)
            out["points"].append(pt)
            print(f"  redis {loaded:>7,} keys:    RSS {pt['rss'] / 2**20:>7.1f} MiB", flush=True)
    finally:
        r.stop()
    return out


def per_entry(mem, value_len=1024):
    """Bytes of RSS per entry between idle and each point, and the overhead over the value."""
    idle = mem["idle"]["rss"]
    prev = mem["idle"]
    for pt in mem["points"]:
        pt["rss_per_entry"] = (pt["rss"] - idle) / pt["entries"]
        # Marginal: between this point and the previous one, free of start-up costs.
        pt["marginal"] = (pt["rss"] - prev["rss"]) / (pt["entries"] - prev["entries"])
        pt["overhead"] = pt["marginal"] - value_len
        prev = pt


# ---- machine ----------------------------------------------------------------------------

def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ver = subprocess.run([h.SMCACHED, "--version"], capture_output=True, text=True)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release,
            "load_before": os.getloadavg(),
            "versions": {"smcached": (ver.stdout or ver.stderr).strip().splitlines()[0]
                         if (ver.stdout or ver.stderr).strip() else "unknown",
                         **{n: bench_peers.version_of(n)
                            for n in ("redis", "nginx", "wrk", "hyperfine", "gnuplot")},
                         "python": sys.version.split()[0]}}


# ---- main -------------------------------------------------------------------------------

SECTIONS = ["seal", "throughput", "scaling", "cli", "http", "sdk", "fleet", "memory", "filemem"]


def main():
    global h, VALUE_LEN, bench_peers
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=1.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=0.2, help="unmeasured seconds per run")
    ap.add_argument("--scaling-duration", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="1 KiB rows and 3 scaling points only")
    ap.add_argument("--cli-runs", type=int, default=30)
    ap.add_argument("--sdk-calls", type=int, default=500,
                    help="boto3 get_secret_value calls per target in the sdk section")
    ap.add_argument("--fleet-readers", type=int, default=20)
    ap.add_argument("--fleet-secrets", type=int, default=10)
    ap.add_argument("--fleet-seconds", type=float, default=12)
    ap.add_argument("--fleet-ttl", type=float, default=3)
    ap.add_argument("--mem-max", type=int, default=100000,
                    help="largest cache fill of the memory curve (1k, 10k, 100k)")
    ap.add_argument("--mem-secrets", type=int, default=10000, help="filemem: secrets loaded")
    ap.add_argument("--mem-chunk", type=int, default=20,
                    help="filemem: secrets in the file at a time while loading")
    ap.add_argument("--skip", action="append", default=["filemem"], choices=SECTIONS)
    ap.add_argument("--only", action="append", default=[], choices=SECTIONS)
    ap.add_argument("--agent-cache", action="append", default=[], metavar="KEY=VALUE",
                    help="a [cache] line for the throughput section's agent, e.g. "
                         "'body_linger_ms = 2' (may be repeated; default: the defaults)")
    ap.add_argument("--json", help="also write every result to this file")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "bench"),
                    help="where RESULTS.md, results.json and the charts go ('' for nowhere)")
    ap.add_argument("--render", metavar="JSON",
                    help="only redraw RESULTS.md and the charts from a saved results.json")
    args = ap.parse_args()
    if args.render:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_report
        with open(args.render) as f:
            bench_report.render(json.load(f), args.out)
        return 0

    build = args.build if os.path.isabs(args.build) else os.path.join(ROOT, args.build)
    os.environ["SMCACHE_BUILD"] = build
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import smc_harness
    import bench_peers as bp
    h = smc_harness
    bench_peers = bp
    want = (lambda s: s in args.only) if args.only else (lambda s: s not in args.skip)

    bins = {name: os.path.join(build, "bench", name) for name in ("loadgen", "echo_server", "bench_seal",
                                                           "fake_upstream")}
    for path in list(bins.values()) + [h.SMCACHED, h.SMCACHE]:
        if not os.access(path, os.X_OK):
            print(f"run_bench: {path} is missing: run `make bench`", file=sys.stderr)
            return 1

    failed = False
    t_start = time.monotonic()
    report = {"machine": machine_info(), "args": vars(args)}
    m = report["machine"]
    print(f"machine: {m['nproc']} x {m['cpu']}, Linux {m['kernel']}, load "
          f"{' '.join(f'{x:.1f}' for x in m['load_before'])}; {m['versions']}")
    for peer in ("redis", "nginx", "wrk", "hyperfine", "gnuplot"):
        if not bench_peers.have(peer):
            print(f"note: {bench_peers.BINARIES[peer]} is not installed: its rows are skipped "
                  "(`make deps-bench` installs the peers)")
    workdir = tempfile.mkdtemp(prefix="smc-bench-")
    srv = None
    try:
        if want("seal"):
            print("\n== seal (tests/bench/bench_seal.c)")
            p = subprocess.run([bins["bench_seal"]], capture_output=True, text=True, timeout=120)
            print(p.stdout, end="")
            report["seal"] = p.stdout
            if p.returncode != 0:
                print(f"bench_seal failed ({p.returncode}): {p.stderr}")
                failed = True
        if want("throughput") or want("scaling") or want("cli"):
            srv = Servers(args, bins, workdir)
            srv.start()
            for note in srv.notes:
                print(f"note: {note}")
            report["notes"] = srv.notes
            if want("throughput"):
                print("\n== throughput: echo_server (the limit), redis-server, smcached; "
                      "Unix sockets, loadgen")
                f, report["throughput"] = throughput_bench(args, srv)
                failed |= f
            if want("scaling"):
                print("\n== scaling: 1 KiB hot, connections 1..256, no pipelining, one round each")
                f, report["scaling"] = scaling_bench(args, srv)
                failed |= f
            if want("cli"):
                print("\n== cold processes: one read each")
                report["cli"] = cli_bench(args, srv)
            st = stats(srv.agent)
            report["agent_stats"] = {k: st.get(k) for k in ("cache_hits", "cache_misses",
                                                            "replies_ok")}
            srv.stop()
            srv = None
        if want("http"):
            print("\n== HTTP front door vs nginx (wrk, 1 KiB value)")
            f, report["http"] = http_bench(args, workdir)
            failed |= f
        if want("sdk"):
            print("\n== boto3 get_secret_value per call: the agent's endpoint, moto, a canned answer")
            report["sdk"] = sdk_bench(args, workdir)
        if want("fleet"):
            print("\n== upstream calls, fleet-like workload (moto behind a counting proxy)")
            report["fleet"] = fleet_bench(args)
            failed |= bool(report["fleet"].get("errors"))
        if want("memory"):
            print("\n== memory vs cached 1 KiB entries, measured from /proc (agent: aws backend, "
                  "fast fake upstream)")
            report["memory"] = {"agent": agent_memory_bench(args, bins, workdir),
                                "redis": redis_memory_bench(args, workdir)}
            for who in ("agent", "redis"):
                if "points" in report["memory"][who]:
                    per_entry(report["memory"][who])
                    mm = report["memory"][who]
                    idle = mm["idle"]
                    print(f"  {who}: idle RSS {idle['rss'] / 2**20:.1f} MiB (anonymous "
                          f"{idle['rss_anon'] / 2**20:.1f}, files {idle['rss_file'] / 2**20:.1f}), "
                          f"VmLck {idle['lck'] / 2**20:.1f} MiB; per entry " +
                          ", ".join(f"{p['entries']:,}: {p['rss_per_entry']:.0f} B from idle, "
                                    f"{p['marginal']:.0f} B marginal ({p['overhead']:.0f} over "
                                    f"the value)" for p in mm["points"]))
            ag, rd = report["memory"]["agent"], report["memory"]["redis"]
            if ag.get("points"):
                last = ag["points"][-1]
                print(f"  targets (issue 15): overhead per cached 1 KiB version at "
                      f"{last['entries']:,} {last['overhead']:.0f} B (<= {TARGET_BYTES_PER_VERSION}: "
                      f"{'met' if last['overhead'] <= TARGET_BYTES_PER_VERSION else 'MISSED'})" +
                      (f"; idle RSS {ag['idle']['rss'] / 2**20:.1f} MiB vs redis "
                       f"{rd['idle']['rss'] / 2**20:.1f} MiB "
                       f"({'met' if ag['idle']['rss'] <= rd['idle']['rss'] else 'MISSED'})"
                       if rd.get("idle") else f"; redis: {rd.get('note', 'not measured')}"))
        if want("filemem"):
            print(f"\n== memory per cached version, file backend ({args.mem_secrets} secrets)")
            report["filemem"] = memory_bench(args)
    except (BenchError, AssertionError, OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"run_bench: {type(e).__name__}: {e}", file=sys.stderr)
        failed = True
    finally:
        if srv is not None:
            try:
                srv.stop()
            except (AssertionError, OSError) as e:
                print(f"run_bench: {e}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    report["elapsed_s"] = time.monotonic() - t_start
    report["machine"]["load_after"] = os.getloadavg()
    report["failed"] = failed
    print(f"\nelapsed {report['elapsed_s']:.0f} s")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    for path in [args.json] + ([os.path.join(args.out, "results.json")] if args.out else []):
        if path:
            with open(path, "w") as f:
                json.dump(report, f, indent=1)
    if args.out:
        import bench_report
        bench_report.render(report, args.out)
    if failed:
        print("run_bench: FAILED: some replies were wrong or missing, or a step failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
