"""Renders one run of tests/bench/run_bench.py into docs/bench/: RESULTS.md and PNG charts.

render(report, outdir) writes RESULTS.md (tables of ratios against the limit, medians with
min-max, the machine and versions) and, with gnuplot installed, throughput.png, scaling.png
and memory.png (gnuplot's pngcairo terminal, else png). Without gnuplot the tables are
still written and the chart lines say why they are missing.
"""
import os
import subprocess

import bench_peers

TARGET_RATIO = 0.80
TARGET_P50 = 1.30


def _f(x, fmt=",.0f"):
    return "–" if x is None else format(x, fmt)


def _gnuplot(script, outdir):
    try:
        p = subprocess.run([bench_peers.which("gnuplot")], input=script, text=True,
                           capture_output=True, cwd=outdir, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    return None if p.returncode == 0 else p.stderr.strip()[-300:]


def _terminal():
    p = subprocess.run([bench_peers.which("gnuplot"), "-e", "set terminal"], capture_output=True,
                       text=True, timeout=30)
    if "pngcairo" in (p.stdout + p.stderr):
        return "pngcairo size 1000,560 enhanced font 'Sans,11'"
    return "png size 1000,560"


def charts(report, outdir):
    """Writes the .dat files and PNGs; returns {chart: error or None}."""
    out = {}
    if not bench_peers.have("gnuplot"):
        return {k: "gnuplot is not installed (`make deps-bench`)"
                for k in ("throughput", "scaling", "memory")}
    term = _terminal()
    rows = report.get("throughput") or []
    if rows:
        with open(os.path.join(outdir, "throughput.dat"), "w") as f:
            f.write("# workload agent/limit redis/limit agent_min agent_max\n")
            for r in rows:
                s = r["servers"]
                red = s.get("redis", {}).get("ratio", float("nan"))
                label = r["workload"].replace(" hot", "").replace("65536 B", "64K") \
                    .replace("1024 B", "1K").replace("64 B", "64B")
                f.write(f"\"{label}\" "
                        f"{s['agent']['ratio']:.4f} {red:.4f} {s['agent']['ratio_min']:.4f} "
                        f"{s['agent']['ratio_max']:.4f}\n")
        out["throughput"] = _gnuplot(f"""
set terminal {term}
set output 'throughput.png'
set title "Throughput relative to the physical limit (echo server = 1.0), 2-core machine; medians of interleaved rounds"
set ylabel "req/s relative to the limit"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set xtics rotate by -30 scale 0 font ',10'
set rmargin 8
set bmargin 5
set key top left
set arrow from graph 0, first 1.0 to graph 1, first 1.0 nohead lw 2 lc rgb '#444444' dt 2
set arrow from graph 0, first {TARGET_RATIO} to graph 1, first {TARGET_RATIO} nohead lw 1 lc rgb '#cc3333' dt 3
set label "limit" at graph 1.0, first 1.0 offset -5,0.6 font ',9'
set label "target 0.8" at graph 1.0, first {TARGET_RATIO} offset -8,-0.6 font ',9' tc rgb '#cc3333'
plot 'throughput.dat' using 2:4:5:xtic(1) title 'smcached (min-max of rounds)' lc rgb '#2a6fbb', \\
     '' using 3:3:3 title 'redis-server' lc rgb '#d98c1f'
""", outdir)
    pts = report.get("scaling") or []
    if pts:
        names = [n for n in ("echo", "redis", "agent") if n in pts[0]]
        with open(os.path.join(outdir, "scaling.dat"), "w") as f:
            f.write("# clients " + " ".join(names) + "\n")
            for p in pts:
                f.write(f"{p['clients']} " + " ".join(f"{p[n]['rps']:.0f}" for n in names) + "\n")
        titles = {"echo": "echo server (limit)", "redis": "redis-server", "agent": "smcached"}
        colors = {"echo": "#444444", "redis": "#d98c1f", "agent": "#2a6fbb"}
        plots = ", ".join(f"'scaling.dat' using 1:{i + 2} with linespoints lw 2 pt 7 "
                          f"lc rgb '{colors[n]}' title '{titles[n]}'"
                          for i, n in enumerate(names))
        out["scaling"] = _gnuplot(f"""
set terminal {term}
set output 'scaling.png'
set title "Throughput vs connections: 1 KiB GET over a Unix socket, closed loop, no pipelining"
set xlabel "connections"
set ylabel "requests per second"
set logscale x 2
set rmargin 6
set format y "%.0s%c"
set yrange [0:*]
set grid
set key top left
plot {plots}
""", outdir)
    mem = report.get("memory") or {}
    agent = mem.get("agent", {})
    redis = mem.get("redis", {})
    if agent.get("points"):
        with open(os.path.join(outdir, "memory.dat"), "w") as f:
            f.write("# entries agent_rss_mib agent_vmlck_mib redis_rss_mib\n")
            rp = {p["entries"]: p for p in redis.get("points", [])}
            for p in [agent["idle"]] + agent["points"]:
                r = rp.get(p["entries"]) or (redis.get("idle") if p["entries"] == 0 else None)
                f.write(f"{max(p['entries'], 100)} {p['rss'] / 2**20:.2f} {p['lck'] / 2**20:.2f} "
                        f"{r['rss'] / 2**20 if r else float('nan'):.2f}\n")
        out["memory"] = _gnuplot(f"""
set terminal {term}
set output 'memory.png'
set title "Memory vs cached 1 KiB values (RSS and VmLck read from /proc, from outside)"
set xlabel "cached entries"
set ylabel "MiB"
set logscale xy
set rmargin 6
set xrange [60:*]
set xtics add ("idle" 100)
set grid
set key top left
plot 'memory.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#2a6fbb' title 'smcached RSS', \\
     '' using 1:3 with linespoints lw 1 pt 6 dt 2 lc rgb '#2a6fbb' title 'smcached VmLck (mlockall)', \\
     '' using 1:4 with linespoints lw 2 pt 5 lc rgb '#d98c1f' title 'redis-server RSS'
""", outdir)
    return out


def render(report, outdir):
    os.makedirs(outdir, exist_ok=True)
    made = charts(report, outdir)
    m = report["machine"]
    v = m["versions"]
    a = report.get("args", {})
    L = []
    w = L.append
    w("# smcache benchmark results")
    w("")
    w("Generated by `make deps-bench bench` (tests/bench/run_bench.py; tests/bench/README.md "
      "says what each number is). One run, every server on the same machine in the same run.")
    w("")
    w(f"- date: {m['date']}; run took {report.get('elapsed_s', 0):.0f} s"
      + ("; **some step failed (see the run's output)**" if report.get("failed") else ""))
    w(f"- machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, Linux {m['kernel']}")
    lb, la = m.get("load_before", ()), m.get("load_after", ())
    w(f"- load average (1/5/15 min) before: {' / '.join(f'{x:.1f}' for x in lb)}, after: "
      f"{' / '.join(f'{x:.1f}' for x in la)}. The machine is shared: a load above "
      f"{m['nproc']} means other work ran beside the bench, so absolute numbers are low and "
      "noisy; the ratios (every server measured in interleaved rounds under the same load) are "
      "the figures to read.")
    w(f"- versions: {v.get('smcached')}; {v.get('redis')}; {v.get('nginx')}; {v.get('wrk')}; "
      f"{v.get('hyperfine')}; {v.get('gnuplot')}; Python {v.get('python')}")
    w(f"- rounds: {a.get('rounds')} interleaved rounds of {a.get('duration')} s "
      f"(+{a.get('warmup')} s warm-up) per server and row")
    for note in report.get("notes", []):
        w(f"- note: {note}")
    w("")
    rows = report.get("throughput") or []
    if rows:
        w("## Throughput over the Unix socket: smcached and redis-server against the limit")
        w("")
        if not made.get("throughput"):
            w("![throughput relative to the limit](throughput.png)")
            w("")
        w("The limit is `echo_server`: a single-threaded epoll server sending a pre-encoded reply "
          "of exactly the agent's size. All three are driven by the same closed-loop client "
          "(`loadgen`, which speaks RESP to redis-server: `GET key` of the same value) and every "
          "reply is checked. `cN` = N connections, one request outstanding each; `c8x16` = 8 "
          "connections with 16 pipelined requests each. *spread* = each batch of 16 asks for 16 "
          "distinct secrets cycling over 2,000 cached ones. Ratio = median req/s / the limit's "
          "median req/s, with the range of the per-round ratios; p50 x = median p50 latency / "
          f"the limit's. Targets (issue 15): ratio >= {TARGET_RATIO}, p50 x <= {TARGET_P50}.")
        w("")
        w("| workload | limit req/s | smcached req/s | smcached / limit (rounds) | p50 µs limit / smcached | p50 x | redis req/s | redis / limit |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            s = r["servers"]
            e, ag, rd = s["echo"], s["agent"], s.get("redis")
            ok = "" if ag["ratio"] >= TARGET_RATIO else " ⚠"
            w(f"| {r['workload']} | {e['rps']:,.0f} | {ag['rps']:,.0f} | **{ag['ratio']:.2f}**{ok} "
              f"({ag['ratio_min']:.2f}–{ag['ratio_max']:.2f}) | {e['p50_us']:.0f} / "
              f"{ag['p50_us']:.0f} | {ag['p50_ratio']:.2f} | "
              f"{_f(rd['rps'] if rd else None)} | {_f(rd['ratio'] if rd else None, '.2f')} |")
        w("")
        st = report.get("agent_stats")
        if st:
            w(f"The agent's STATS after these rows: cache_hits {st.get('cache_hits'):,}, "
              f"cache_misses {st.get('cache_misses')} (the initial fetches), replies_ok "
              f"{st.get('replies_ok'):,}.")
            w("")
    pts = report.get("scaling") or []
    if pts:
        names = [n for n in ("echo", "redis", "agent") if n in pts[0]]
        title = {"echo": "limit", "redis": "redis", "agent": "smcached"}
        w("## Scaling: throughput vs connections (1 KiB, no pipelining, one round per point)")
        w("")
        if not made.get("scaling"):
            w("![throughput vs connections](scaling.png)")
            w("")
        w("| connections | " + " | ".join(f"{title[n]} req/s" for n in names) +
          " | smcached / limit |")
        w("|---:|" + "---:|" * (len(names) + 1))
        for p in pts:
            ratio = p["agent"]["rps"] / p["echo"]["rps"] if p["echo"]["rps"] else 0
            w(f"| {p['clients']} | " + " | ".join(f"{p[n]['rps']:,.0f}" for n in names) +
              f" | {ratio:.2f} |")
        w("")
    http = report.get("http")
    if http is not None:
        w("## HTTP front door (`[http] listen`) vs nginx serving the same bytes, driven by wrk")
        w("")
        if http.get("rows"):
            w(f"GET /secretsmanager/get?secretId=… with `X-Aws-Parameters-Secrets-Token`, 1 KiB "
              f"value ({http.get('body_bytes')}-byte JSON body); nginx {v.get('nginx')} with "
              "keep-alive, one worker, the same body as a static file. Ratio = smcached / nginx.")
            w("")
            w("| connections | nginx req/s | smcached req/s | ratio (rounds) | p50 µs nginx / smcached |")
            w("|---:|---:|---:|---:|---:|")
            for r in http["rows"]:
                w(f"| {r['conns']} | {r['nginx']['rps']:,.0f} | {r['agent']['rps']:,.0f} | "
                  f"**{r['ratio']:.2f}** ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) | "
                  f"{r['nginx']['p50_us']:.0f} / {r['agent']['p50_us']:.0f} |")
        else:
            w(f"Not measured in this run — {http.get('note')}. The row is implemented "
              "(tests/bench/run_bench.py `http_bench`) and runs once that cause is gone.")
        w("")
    cli = report.get("cli")
    if cli:
        w("## A cold process reading one secret")
        w("")
        if cli.get("note"):
            w(cli["note"])
        else:
            w("Each command is a fresh process reading one 1 KiB secret (hyperfine `-N`, one "
              "warm-up run; medians with min–max). `smcache get` asks the running agent (value "
              "cached); the other two ask moto_server on 127.0.0.1 (no network latency, so they "
              "show only their own start-up and request cost).")
            w("")
            w("| command | median ms | min–max ms | runs | vs smcache |")
            w("|---|---:|---:|---:|---:|")
            base = next(iter(cli.values()))["median_ms"]
            for label, r in cli.items():
                w(f"| {label} | {r['median_ms']:.1f} | {r['min_ms']:.1f}–{r['max_ms']:.1f} | "
                  f"{r['runs']} | {r['median_ms'] / base:.0f}x |")
        w("")
    sdk = report.get("sdk")
    if sdk:
        w("## boto3 per call: through the agent's Secrets Manager endpoint")
        w("")
        if sdk.get("note"):
            w(sdk["note"])
        else:
            w(f"One warm Python process calls boto3 `get_secret_value` {sdk['calls']} times "
              "(after 20 warm-up calls) against each target: the agent's `[endpoint] listen` "
              "(SigV4-signed JSON 1.1, answered from the cache), moto_server on 127.0.0.1, and a "
              "minimal HTTP server returning a canned GetSecretValue answer, which is what boto3 "
              "itself costs per call (the client-side limit).")
            w("")
            w("| target | calls/s | p50 ms | p99 ms | vs the canned answer |")
            w("|---|---:|---:|---:|---:|")
            rows = sdk["rows"]
            limit = [r for k, r in rows.items() if "canned" in k]
            base = limit[0]["calls_per_s"] if limit else None
            for label, r in rows.items():
                ratio = f"{r['calls_per_s'] / base:.2f}" if base else "-"
                w(f"| {label} | {r['calls_per_s']:,.0f} | {r['p50_us'] / 1000:.2f} | "
                  f"{r['p99_us'] / 1000:.2f} | {ratio} |")
        w("")
    fl = report.get("fleet")
    if fl:
        w("## Upstream calls for a fleet-like workload")
        w("")
        if fl.get("note"):
            w(fl["note"])
        else:
            sim = fl["simulated"]
            w(f"{fl['readers']} reader processes each read the same {fl['secrets']} secrets in a "
              f"loop (50 ms pause per pass) for {fl['seconds']:g} s through one smcached "
              f"(aws backend, `ttl = {fl['ttl']:g}`), moto behind a counting proxy. Naive = one "
              "GetSecretValue per read. The per-process cache row is a **simulation** "
              "(tests/bench/bench_peers.py `fleet_simulation`, not a run): each process holds "
              "its own aws-secretsmanager-caching SecretCache with `secret_refresh_interval` = "
              f"{fl['ttl']:g} s, refreshing each secret at a random point between half and all "
              "of the interval (DescribeSecret; GetSecretValue only on a version change, none "
              "here) after one initial GetSecretValue.")
            w("")
            w("| who | upstream calls | of which | vs smcached |")
            w("|---|---:|---|---:|")
            at = max(fl["agent_total"], 1)
            w(f"| naive, no cache | {fl['naive_total']:,} | GetSecretValue | "
              f"{fl['naive_total'] / at:,.0f}x |")
            w(f"| per-process SecretCache (simulated) | {sim['total']:,} | "
              f"{sim['GetSecretValue']} GetSecretValue + {sim['DescribeSecret']} DescribeSecret | "
              f"{sim['total'] / at:,.1f}x |")
            w(f"| one smcached (measured at the proxy) | {fl['agent_total']:,} | " +
              " + ".join(f"{n} {k}" for k, n in sorted(fl["agent_calls"].items())) + " | 1x |")
            w("")
            w(f"Reads served: {fl['reads']:,}, errors: {fl['errors']}.")
        w("")
    mem = report.get("memory") or {}
    if mem.get("agent", {}).get("points"):
        ag, rd = mem["agent"], mem.get("redis", {})
        w("## Memory vs cached 1 KiB values (RSS and VmLck from /proc, read from outside)")
        w("")
        if not made.get("memory"):
            w("![memory vs entries](memory.png)")
            w("")
        w("smcached: aws backend filled by `fake_upstream` (one GET per secret, values of "
          "1,024 bytes), `ttl = 3600`; VmLck is its whole locked address space (`mlockall`), "
          "which includes the reserved locked pools. redis-server: the same number of "
          "`SET key <1024 bytes>`, default settings. Per entry = RSS growth / entries added "
          "since the previous point (the first point: since idle, so start-up allocations "
          "weigh on it); overhead = per entry − 1,024 value bytes. Targets (issue 15): overhead "
          "<= 200 B, idle RSS <= redis's.")
        w("")
        w("| entries | smcached RSS MiB | VmLck MiB | sealed MiB | per entry B | overhead B | "
          "redis RSS MiB | redis per entry B | redis overhead B |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rp = {p["entries"]: p for p in rd.get("points", [])}
        w(f"| idle | {ag['idle']['rss'] / 2**20:.1f} | {ag['idle']['lck'] / 2**20:.1f} | – | – | – "
          f"| {_f(rd['idle']['rss'] / 2**20 if rd.get('idle') else None, '.1f')} | – | – |")
        for p in ag["points"]:
            r = rp.get(p["entries"])
            w(f"| {p['entries']:,} | {p['rss'] / 2**20:.1f} | {p['lck'] / 2**20:.1f} | "
              f"{p.get('sealed', 0) / 2**20:.1f} | {p['marginal']:,.0f} | {p['overhead']:,.0f} | "
              f"{_f(r['rss'] / 2**20 if r else None, '.1f')} | "
              f"{_f(r['marginal'] if r else None)} | {_f(r['overhead'] if r else None)} |")
        w("")
        if rd.get("note"):
            w(f"redis-server: {rd['note']}.")
            w("")
        if ag.get("upstream_calls"):
            w(f"Upstream calls answered by fake_upstream while filling: {ag['upstream_calls']}.")
            w("")
    for k, err in made.items():
        if err:
            w(f"- chart {k}.png not drawn: {err}")
    if report.get("seal"):
        w("## Seal micro-benchmark (bench_seal)")
        w("")
        w("```")
        w(report["seal"].rstrip())
        w("```")
        w("")
    with open(os.path.join(outdir, "RESULTS.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"wrote {os.path.join(outdir, 'RESULTS.md')}" +
          "".join(f", {k}.png" for k, e in made.items() if not e))
