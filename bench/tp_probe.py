"""Run by run.py, alone or as one rank of a tensor-parallel job (SHARDLITE_RANK/WORLD_SIZE set):
build the model, then for each batch size resize, make 3 warm-up calls and RUNS timed calls (a
fixed count, so that every rank makes the same calls). Before each batch's timed calls it prints
"ready" and waits for a line on stdin: run.py starts the timed calls of all its processes at once,
so that processes that share no collective (the ceiling's halves) still contend for memory over
the same window, as the ranks of a job do. Saves rank 0's first output per batch as
OUT_PREFIX<batch>.npy and prints one JSON object: {"rank", "times": {batch: [seconds...]}}.

    python tp_probe.py MODEL THREADS RUNS X_PREFIX OUT_PREFIX BATCH...

MODEL may hold "{rank}" (each rank's own file); the input of batch b is X_PREFIX<b>.npy.
"""

import json
import sys
import time

import numpy as np


def main():
    model_path, threads, runs, x_prefix, out_prefix, *batches = sys.argv[1:]
    threads, runs = int(threads), int(runs)
    import shardlite as mslite

    rank = mslite.distributed()["rank"]
    ctx = mslite.Context()
    ctx.target = ["cpu"]
    ctx.cpu.thread_num = threads
    model = mslite.Model()
    model.build_from_file(model_path.format(rank=rank), mslite.ModelType.MINDIR, ctx)
    inputs = model.get_inputs()
    times = {}
    for batch in batches:
        x = np.load("%s%s.npy" % (x_prefix, batch))
        model.resize(inputs, [list(x.shape)])
        inputs = model.get_inputs()

        def run():
            inputs[0].set_data_from_numpy(x)
            return model.predict(inputs)[0].get_data_to_numpy()

        y = run()
        if rank == 0:
            np.save("%s%s.npy" % (out_prefix, batch), y)
        for _ in range(2):
            run()
        print("ready", flush=True)
        sys.stdin.readline()
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run()
            ts.append(time.perf_counter() - t0)
        times[batch] = ts
    print(json.dumps({"rank": rank, "times": times}))


if __name__ == "__main__":
    main()
