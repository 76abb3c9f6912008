"""shardlite benchmarks against onnxruntime on the same weights, and its communicator and
tensor parallelism against MPI and one rank (see bench/README.md).

    .venv/bin/python bench/run.py [--quick] [--only lenet|mlp|build|allreduce|tp] [--json PATH]

Exit status: 0 when every entry ran and the outputs agreed (goals missed or not), 1 otherwise.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

import harness
import models

PROBE = str(harness.HERE / "build_probe.py")
TP_PROBE = str(harness.HERE / "tp_probe.py")


class Settings:
    def __init__(self, quick):
        self.quick = quick
        self.budget_s = 0.2 if quick else 1.0   # timed seconds per runtime per row
        self.max_runs = 50 if quick else 1000
        self.probes = 1 if quick else 3           # fresh processes per runtime for `build`


def _latency_row(entry, threads, batch, sl, ort):
    ratio = sl["median_ms"] / ort["median_ms"]
    return {"entry": entry, "threads": threads, "batch": batch, "metric": "latency ms",
            "shardlite": sl, "onnxruntime": ort, "ratio": ratio,
            "goal": "ratio <= 1.0", "met": ratio <= 1.0}


def _compare(entry, threads, batch, sl_run, ort_run, x, s):
    harness.check_close("%s threads=%d batch=%d" % (entry, threads, batch), sl_run(x), ort_run(x))
    sl, ort = harness.time_pair(sl_run, ort_run, x, budget_s=s.budget_s, max_runs=s.max_runs)
    return _latency_row(entry, threads, batch, sl, ort)


def bench_lenet(mslite, s, tmp):
    path = harness.fixtures_dir() / "ori_net.mindir"
    onnx_model, dims = models.lenet_onnx(path)
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    rows = []
    for threads in (1, 2):
        _m, sl_run = harness.shardlite_runner(mslite, path, threads)
        _s, ort_run = harness.ort_runner(onnx_model, threads)
        rows.append(_compare("lenet", threads, dims[0], sl_run, ort_run, x, s))
    return rows


def bench_mlp(mslite, s, tmp):
    weights = models.mlp_weights(layers=4, dim=4096, seed=0)
    rng = np.random.default_rng(1)
    rows = []
    for batch in (1, 64):
        path = models.write_mlp_mindir(os.path.join(tmp, "mlp_b%d.mindir" % batch), weights, batch)
        onnx_model = models.mlp_onnx(weights, batch).SerializeToString()
        x = rng.standard_normal((batch, 4096)).astype(np.float32)
        for threads in (1, 2):
            _m, sl_run = harness.shardlite_runner(mslite, path, threads)
            _s, ort_run = harness.ort_runner(onnx_model, threads)
            rows.append(_compare("mlp 4x4096", threads, batch, sl_run, ort_run, x, s))
            del _m, sl_run, _s, ort_run  # one pair of copies of the weights at a time
        os.remove(path)
    return rows


def _probe(runtime, files, threads, x_path, out_path):
    cmd = [sys.executable, PROBE, runtime, files["model"], str(threads), x_path, out_path,
           *files["files"]]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError("%s probe failed (exit %d):\n%s" % (runtime, res.returncode,
                                                              res.stderr[-4000:]))
    return json.loads(res.stdout.strip().splitlines()[-1])


def _agg(probes):
    """Median build time and first predict, worst-case memory over the probe processes."""
    def med(k):
        return float(np.median([p[k] for p in probes]))

    def worst(k):
        return max(p[k] for p in probes)

    return {"build_ms": med("build_s") * 1e3, "first_predict_ms": med("first_predict_s") * 1e3,
            "rss_base_mib": med("rss_base_mib"),
            "rss_after_build_mib": worst("rss_after_build_mib"),
            "rss_mib": worst("rss_mib"), "peak_rss_mib": worst("peak_rss_mib"),
            "runs": len(probes), "build_ms_all": [p["build_s"] * 1e3 for p in probes]}


def bench_build(mslite, s, tmp):
    threads = 2
    folder = tempfile.mkdtemp(prefix="chain-", dir=tmp)
    t0 = time.perf_counter()
    chain = models.write_chain(folder, layers=16, dim=4096)
    print("  (wrote the %.0f MiB chain model twice in %.1f s)"
          % (chain["weight_bytes"] / 2**20, time.perf_counter() - t0), flush=True)
    x_path = os.path.join(folder, "x.npy")
    np.save(x_path, np.random.default_rng(2).standard_normal((1, chain["dim"])).astype(np.float32))
    outs = {rt: os.path.join(folder, "%s.npy" % rt) for rt in ("shardlite", "ort")}
    probes = {"shardlite": [], "ort": []}
    for i in range(s.probes):
        for rt in (("shardlite", "ort") if i % 2 == 0 else ("ort", "shardlite")):
            probes[rt].append(_probe(rt, chain[rt], threads, x_path, outs[rt]))
        harness.check_close("build chain", np.load(outs["shardlite"]), np.load(outs["ort"]))
    sl, ort = _agg(probes["shardlite"]), _agg(probes["ort"])
    limit_mib = (chain["weight_bytes"] + chain["activation_bytes"]) / 2**20 + 64
    common = {"entry": "build 1 GiB ext", "threads": threads, "batch": 1}
    return [
        dict(common, metric="build ms (warm)",
             shardlite={"median_ms": sl["build_ms"], "all_ms": sl["build_ms_all"]},
             onnxruntime={"median_ms": ort["build_ms"], "all_ms": ort["build_ms_all"]},
             ratio=sl["build_ms"] / ort["build_ms"], goal="< 200 ms",
             met=sl["build_ms"] < 200),
        dict(common, metric="first predict ms",
             shardlite={"median_ms": sl["first_predict_ms"]},
             onnxruntime={"median_ms": ort["first_predict_ms"]},
             ratio=sl["first_predict_ms"] / ort["first_predict_ms"], goal="-", met=None),
        dict(common, metric="peak RSS MiB",
             shardlite=dict(sl, value=sl["peak_rss_mib"]),
             onnxruntime=dict(ort, value=ort["peak_rss_mib"]),
             ratio=sl["peak_rss_mib"] / ort["peak_rss_mib"], goal="< %.0f MiB" % limit_mib,
             met=sl["peak_rss_mib"] < limit_mib,
             limit_mib=limit_mib, weight_bytes=chain["weight_bytes"],
             activation_bytes=chain["activation_bytes"]),
    ]


# ---- collectives and tensor parallelism: processes per rank ----

ALLREDUCE_SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20)


def _size_name(n):
    return "%d MiB" % (n >> 20) if n >= 1 << 20 else "%d KiB" % (n >> 10)


def _rank_env(**extra):
    """os.environ without launcher variables (each job sets its own), plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMI_", "PMIX_", "SLURM_", "SHARDLITE_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _mpirun(n):
    if not shutil.which("mpirun"):
        raise RuntimeError("mpirun is missing: install Open MPI (openmpi-bin libopenmpi-dev)")
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return ["mpirun", *root, "--oversubscribe", "-n", str(n)]


def _allreduce_exe():
    """$SL_ALLREDUCE_BENCH, else build/allreduce_bench (built here if missing)."""
    if os.environ.get("SL_ALLREDUCE_BENCH"):
        return os.environ["SL_ALLREDUCE_BENCH"]
    build = harness.REPO / "build"
    exe = build / "allreduce_bench"
    if not exe.exists():
        for cmd in (["cmake", "-S", str(harness.REPO), "-B", str(build), "-G", "Ninja"],
                    ["cmake", "--build", str(build), "--target", "allreduce_bench"]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError("cannot build allreduce_bench (it needs Open MPI's "
                                   "libopenmpi-dev):\n%s" % (res.stdout + res.stderr)[-3000:])
    return str(exe)


def bench_allreduce(mslite, s, tmp):
    """allreduce_bench under mpirun: shardlite's shm communicator and MPI_Allreduce in the same
    processes, float32 sums in place."""
    exe = _allreduce_exe()
    rounds, round_s = (7, 0.02) if s.quick else (21, 0.05)
    rows = []
    for n in (2, 4):
        cmd = _mpirun(n) + [exe, "-r", str(rounds), "-t", str(round_s)]
        res = subprocess.run(cmd + [str(b) for b in ALLREDUCE_SIZES], capture_output=True,
                             text=True, timeout=300, env=_rank_env())
        if res.returncode != 0:
            raise RuntimeError("allreduce_bench at %d ranks failed (exit %d):\n%s"
                               % (n, res.returncode, (res.stdout + res.stderr)[-4000:]))
        for line in res.stdout.splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            size = r["bytes"]
            sl, mpi = harness._stats(r["shm_s"]), harness._stats(r["mpi_s"])
            for st in (sl, mpi):
                st["gbps"] = size / (st["median_ms"] * 1e-3) / 1e9
                st["iters"] = r["iters"]
            ratio = sl["median_ms"] / mpi["median_ms"]
            limit = 0.5 if size <= 64 << 10 else 0.7 if size >= 16 << 20 else None
            rows.append({"entry": "allreduce %d ranks" % n, "threads": 1,
                         "batch": _size_name(size), "metric": "latency ms (GB/s)",
                         "shardlite": sl, "baseline": mpi, "baseline_name": "MPI_Allreduce",
                         "ratio": ratio, "goal": "ratio <= %.1f" % limit if limit else "-",
                         "met": ratio <= limit if limit else None, "bytes": size, "ranks": n})
    return rows


def _tp_probe(model, ranks, threads, runs, folder, tag, batches, copies=1):
    """Runs tp_probe.py as `ranks` rank processes (or `copies` independent processes of one
    rank each, model "{copy}" replaced by the copy's number), bound to CPUs as `shardlite
    launch` binds them, starting each batch's timed calls in all of them at once; returns
    {batch: seconds}: of each call, the slowest process's time (the ranks of a job wait for
    each other in every call anyway; independent copies would, were they a job)."""
    from shardlite.launch import cpu_blocks

    def start(r):  # process r: rank r of one job, or copy r (saving its outputs apart)
        copy = r // ranks
        out = tag + ("_c%d" % copy if copy else "") + "_y"
        cmd = [sys.executable, TP_PROBE, model.replace("{copy}", str(copy)), str(threads),
               str(runs), os.path.join(folder, "x"), os.path.join(folder, out),
               *map(str, batches)]
        env = _rank_env(SHARDLITE_RANK=r % ranks, SHARDLITE_WORLD_SIZE=ranks,
                        SHARDLITE_JOB_ID="bench%d-%s-%d" % (os.getpid(), tag, copy))
        bind = (lambda: os.sched_setaffinity(0, blocks[r])) if blocks[r] else None
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errs[r], text=True, env=env, preexec_fn=bind)

    def failed():
        report = []
        for r, (p, e) in enumerate(zip(procs, errs)):
            p.kill()
            p.wait()
            e.seek(0)
            report.append("rank %d (exit %d): %s" % (r, p.returncode, e.read()[-3000:]))
        return RuntimeError("tp probe %s failed:\n%s" % (tag, "\n".join(report)))

    procs_n = max(ranks, copies)
    blocks = cpu_blocks(procs_n) if procs_n > 1 else [None]
    errs = [tempfile.TemporaryFile("w+") for _ in range(procs_n)]
    procs = [start(r) for r in range(procs_n)]
    for _ in batches:  # the barrier before each batch's timed calls
        if any(p.stdout.readline().strip() != "ready" for p in procs):
            raise failed()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
    outs = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode != 0 for p in procs):
        raise failed()
    each = [json.loads(out.strip().splitlines()[-1])["times"] for out in outs]
    return {b: [max(ts) for ts in zip(*(e[b] for e in each))] for b in each[0]}


def bench_tp(mslite, s, tmp):
    """The Megatron MLP 4096 -> 16384 -> 4096 on 1 rank and split over 2 ranks (a process each,
    one thread each), batch 1 and 32. At batch 1 a rank streams its weights from memory, so the
    speedup is bounded by how memory bandwidth grows with a second reader: the `ceiling` rows
    run each rank's half without its AllReduce, both at once as two independent processes
    (the same work and memory traffic, no communication and no waiting for each other; each
    call counted as the slower of the two, as a job would pay it)."""
    batches = (1, 32)
    weights = models.tp_mlp_weights()
    folder = tempfile.mkdtemp(prefix="tp-", dir=tmp)
    t0 = time.perf_counter()
    whole = os.path.join(folder, "mlp.mindir")
    models.write_tp_mlp(whole, weights)
    for r in range(2):
        models.write_tp_mlp(os.path.join(folder, "mlp%d.mindir" % r), weights, r, 2)
        models.write_tp_mlp(os.path.join(folder, "half%d.mindir" % r), weights, r, 2,
                            all_reduce=False)
    print("  (wrote the 512 MiB MLP whole and split in %.1f s)" % (time.perf_counter() - t0),
          flush=True)
    rng = np.random.default_rng(4)
    xs = {b: rng.standard_normal((b, 4096)).astype(np.float32) for b in batches}
    for b, x in xs.items():
        np.save(os.path.join(folder, "x%d.npy" % b), x)
    runs = 8 if s.quick else 30
    configs = {"1r1t": (whole, 1, 1, 1), "1r2t": (whole, 1, 2, 1),
               "2r1t": (os.path.join(folder, "mlp{rank}.mindir"), 2, 1, 1),
               "halves": (os.path.join(folder, "half{copy}.mindir"), 1, 1, 2)}
    times = {tag: {b: [] for b in batches} for tag in configs}
    for i in range(s.probes):  # alternating order: a noisy neighbour hits all alike
        for tag in (list(configs) if i % 2 == 0 else list(configs)[::-1]):
            path, ranks, threads, copies = configs[tag]
            for b, ts in _tp_probe(path, ranks, threads, runs, folder, tag, batches,
                                   copies).items():
                times[tag][int(b)] += ts
    for tag in configs:
        for b, x in xs.items():
            got = np.load(os.path.join(folder, "%s_y%d.npy" % (tag, b)))
            part = (0, 2) if tag == "halves" else (0, 1)  # the first copy: rank 0's half
            harness.check_close("tp mlp %s batch %d (against numpy)" % (tag, b), got,
                                models.tp_mlp_numpy(weights, x, *part))
    rows = []
    for b in batches:
        two = harness._stats(times["2r1t"][b])
        for base, goal in (("1r1t", 1.7 if b == 1 else None), ("1r2t", None)):
            one = harness._stats(times[base][b])
            speedup = one["median_ms"] / two["median_ms"]
            rows.append({"entry": "tp mlp 2 ranks", "threads": 1, "batch": b,
                         "metric": "latency ms vs 1 rank %s thr" % base[-2],
                         "shardlite": two, "baseline": one,
                         "baseline_name": "1 rank, %s thread(s)" % base[-2],
                         "ratio": 1 / speedup, "speedup": speedup,
                         "goal": "speedup >= %.1f" % goal if goal else "-",
                         "met": speedup >= goal if goal else None})
        one, halves = harness._stats(times["1r1t"][b]), harness._stats(times["halves"][b])
        ceiling = one["median_ms"] / halves["median_ms"]
        rows.append({"entry": "tp ceiling: halves, no comm", "threads": 1, "batch": b,
                     "metric": "latency ms vs 1 rank 1 thr", "shardlite": halves,
                     "baseline": one, "baseline_name": "1 rank, 1 thread", "ratio": 1 / ceiling,
                     "speedup": ceiling, "goal": "-", "met": None})
    return rows


ENTRIES = {"lenet": bench_lenet, "mlp": bench_mlp, "build": bench_build,
           "allreduce": bench_allreduce, "tp": bench_tp}


# ---- report ----

def _cell(stats):
    if "value" in stats:
        return "%.0f" % stats["value"]
    ms = "%.4f" if stats["median_ms"] < 0.1 else "%.3f"  # microsecond collectives
    if "p10_ms" in stats:
        cell = (ms + " [" + ms + "-" + ms + "]") % (stats["median_ms"], stats["p10_ms"],
                                                    stats["p90_ms"])
    else:
        cell = ms % stats["median_ms"]
    return cell + (" (%.1f)" % stats["gbps"] if "gbps" in stats else "")


def print_table(rows):
    head = ("entry", "thr", "batch", "metric", "shardlite", "baseline", "ratio", "goal", "met?")
    lines = [head]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append((r["entry"], str(r["threads"]), str(r["batch"]), r["metric"],
                      _cell(r["shardlite"]), _cell(r.get("onnxruntime") or r["baseline"]),
                      "%.2g" % r["ratio"] if r["ratio"] < 0.1 else "%.2f" % r["ratio"],
                      r["goal"], met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print("latency cells: median [p10-p90] in ms; ratio = shardlite / baseline medians; "
          "baseline: onnxruntime, MPI_Allreduce (allreduce; GB/s = bytes / median) or the "
          "whole model on 1 rank (tp: ratio = 1 / speedup)")


def environment(mslite):
    import onnxruntime

    env = {"python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
           "numpy": np.__version__, "shardlite": getattr(mslite, "__version__", "?")}
    try:
        env["shardlite_build"] = mslite.build_info()
    except Exception as e:  # informational only
        env["shardlite_build"] = repr(e)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    ap.add_argument("--only", choices=sorted(ENTRIES), action="append",
                    help="run only this entry (may be repeated)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args(argv)

    import shardlite as mslite

    settings = Settings(args.quick)
    env = environment(mslite)
    print("shardlite %s vs onnxruntime %s, %s CPUs%s" % (
        env["shardlite"], env["onnxruntime"], env["cpus"],
        "".join(", %s=%s" % (k, env[k]) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in env)), flush=True)

    rows, errors = [], []
    tmp = tempfile.mkdtemp(prefix="shardlite-bench-", dir="/tmp")
    t_start = time.perf_counter()
    try:
        for name in args.only or list(ENTRIES):
            print("running %s ..." % name, flush=True)
            t0 = time.perf_counter()
            try:
                rows += ENTRIES[name](mslite, settings, tmp)
            except harness.Mismatch as e:
                errors.append({"entry": name, "error": "mismatch: %s" % e})
                print("  MISMATCH: %s" % e, flush=True)
            except Exception as e:
                errors.append({"entry": name, "error": "%s: %s" % (type(e).__name__, e)})
                traceback.print_exc()
            print("  %s took %.1f s" % (name, time.perf_counter() - t0), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print_table(rows)
    print("total %.1f s" % (time.perf_counter() - t_start))
    for e in errors:
        print("ERROR in %s: %s" % (e["entry"], e["error"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "quick": args.quick, "rows": rows, "errors": errors},
                      f, indent=2)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
