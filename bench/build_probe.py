"""Run in a fresh process by run.py: warm the page cache with the model's files, then time loading
the model and measure the process's memory after its first predict. Prints one JSON object.

    python build_probe.py {shardlite|ort} MODEL THREADS X.npy OUT.npy FILE...
"""

import json
import sys
import time

import numpy as np


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _warm(paths):
    buf = bytearray(1 << 20)  # small: VmHWM must not count it
    view = memoryview(buf)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(view):
                pass


def main():
    runtime, model_path, threads, x_path, out_path, *files = sys.argv[1:]
    threads = int(threads)
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import harness

    x = np.load(x_path)
    if runtime == "shardlite":
        import shardlite

        def load():
            return harness.shardlite_runner(shardlite, model_path, threads)
    else:
        import onnxruntime  # noqa: F401  (imported before the baseline, like shardlite)

        def load():
            return harness.ort_runner(model_path, threads)

    _warm(files)
    base_kib = _status_kib("VmRSS")
    t0 = time.perf_counter()
    _model, run = load()  # the model lives as long as run
    build_s = time.perf_counter() - t0
    after_build_kib = _status_kib("VmRSS")
    t0 = time.perf_counter()
    y = run(x)
    first_s = time.perf_counter() - t0
    np.save(out_path, y)
    print(json.dumps({
        "build_s": build_s,
        "first_predict_s": first_s,
        "rss_base_mib": base_kib / 1024,
        "rss_after_build_mib": after_build_kib / 1024,
        "rss_mib": _status_kib("VmRSS") / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
    }))


if __name__ == "__main__":
    main()
