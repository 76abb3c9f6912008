"""One rank of the distributed-failure tests (run under `shardlite launch` or mpirun):

    dist_worker.py MODEL_STEM [--raise-on R] [--die-after-first R] [--raise-after-first R]
                   [--loop SECONDS] [--stall R SECONDS] [--quiet-sigint]
                   [--second model|thread|runner] [--other-model R] [--extra-build R]
                   [--late R SECONDS] [--rebuild-late R SECONDS] [--linger R SECONDS]

Prints "start rank R pid P job J", loads MODEL_STEM{R}.mindir, prints "built rank R", prints
"predicting rank R", predicts on ones (repeatedly for --loop seconds) and prints "done rank R
<first values>".
- rank --raise-on raises before loading (before its first collective);
- rank --die-after-first kills itself with SIGKILL after its first predict, rank
  --raise-after-first raises after it;
- rank --stall sleeps SECONDS before its first predict;
- --quiet-sigint installs a SIGINT handler that writes the model's input (so takes its lock),
  prints "SIGINT handled" and raises nothing;
- with --second, rank 0 runs its first predict (which waits for a stalled rank 1) on a thread
  and, 0.5 s into it, predicts from the main thread with a second model of its file (model) or
  the same model (thread; runner: every rank predicts through a ModelParallelRunner of its
  file), printing "second: <what that predict raised>";
- with --other-model, every rank builds two models of its file and predicts with the first
  once, then rank R predicts with its second;
- rank --extra-build first builds a model of its file that it never predicts with (as a
  ModelParallelRunner's probe does);
- rank --late sleeps SECONDS before building (joining its group);
- with --rebuild-late, every rank predicts once, drops its model (leaving its group) and builds
  it again, rank R after sleeping SECONDS;
- rank --linger, when a predict fails, prints "failed: <error>" and goes on living for SECONDS
  before it raises (as a process that catches the error and carries on)."""

import argparse
import os
import signal
import threading
import time

import numpy as np

import shardlite as mslite

parser = argparse.ArgumentParser()
parser.add_argument("stem")
parser.add_argument("--raise-on", type=int, default=-1)
parser.add_argument("--die-after-first", type=int, default=-1)
parser.add_argument("--raise-after-first", type=int, default=-1)
parser.add_argument("--loop", type=float, default=0.0)
parser.add_argument("--stall", type=float, nargs=2, default=(-1, 0))
parser.add_argument("--quiet-sigint", action="store_true")
parser.add_argument("--second", choices=("model", "thread", "runner"))
parser.add_argument("--other-model", type=int, default=-1)
parser.add_argument("--extra-build", type=int, default=-1)
parser.add_argument("--late", type=float, nargs=2, default=(-1, 0))
parser.add_argument("--rebuild-late", type=float, nargs=2, default=(-1, 0))
parser.add_argument("--linger", type=float, nargs=2, default=(-1, 0))
args = parser.parse_args()


def quiet_sigint(*_):
    if "inputs" in globals():
        inputs[0].set_data_from_numpy(np.ones(inputs[0].shape, np.float32))
    print("SIGINT handled", flush=True)


if args.quiet_sigint:
    signal.signal(signal.SIGINT, quiet_sigint)

info = mslite.distributed()
rank = info["rank"]
print(f"start rank {rank} pid {os.getpid()} job {info['job']}", flush=True)
if rank == args.raise_on:
    raise RuntimeError(f"rank {rank} fails before its first collective")

if rank == args.late[0]:
    time.sleep(args.late[1])
context = mslite.Context()
context.cpu.thread_num = 1
if rank == args.extra_build:
    extra = mslite.Model()
    extra.build_from_file(f"{args.stem}{rank}.mindir", mslite.ModelType.MINDIR, context)
model = mslite.Model()
model.build_from_file(f"{args.stem}{rank}.mindir", mslite.ModelType.MINDIR, context)
if args.other_model >= 0:
    other = mslite.Model()
    other.build_from_file(f"{args.stem}{rank}.mindir", mslite.ModelType.MINDIR, context)
    first_inputs = model.get_inputs()
    for t in first_inputs:
        t.set_data_from_numpy(np.ones(t.shape, np.float32))
    model.predict(first_inputs)
    if rank == args.other_model:
        model = other
if args.rebuild_late[0] >= 0:
    once = model.get_inputs()
    for t in once:
        t.set_data_from_numpy(np.ones(t.shape, np.float32))
    model.predict(once)
    del model, once, t  # the tensors hold the model
    if rank == args.rebuild_late[0]:
        time.sleep(args.rebuild_late[1])
    model = mslite.Model()
    model.build_from_file(f"{args.stem}{rank}.mindir", mslite.ModelType.MINDIR, context)
if args.second == "runner":
    model = mslite.ModelParallelRunner()
    model.build_from_file(f"{args.stem}{rank}.mindir", context)
print(f"built rank {rank}", flush=True)
inputs = model.get_inputs()
for t in inputs:
    t.set_data_from_numpy(np.ones(t.shape, np.float32))
if rank == args.stall[0]:
    time.sleep(args.stall[1])
print(f"predicting rank {rank}", flush=True)
end = time.monotonic() + args.loop
while True:
    if args.second and rank == 0:
        second = model
        if args.second == "model":
            second = mslite.Model()
            second.build_from_file(f"{args.stem}{rank}.mindir", mslite.ModelType.MINDIR, context)
        res = []
        first = threading.Thread(target=lambda: res.append(model.predict(inputs)))
        first.start()
        time.sleep(0.5)
        try:
            second.predict(inputs)
            print("second: nothing", flush=True)
        except RuntimeError as e:
            print(f"second: {e}", flush=True)
        first.join()
        out = res[0][0].get_data_to_numpy()
        break
    try:
        out = model.predict(inputs)[0].get_data_to_numpy()
    except RuntimeError as e:
        if rank == args.linger[0]:
            print(f"failed: {e}", flush=True)
            time.sleep(args.linger[1])
        raise
    if rank == args.die_after_first:
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == args.raise_after_first:
        raise RuntimeError(f"rank {rank} fails after its first predict")
    if time.monotonic() >= end:
        break
print(f"done rank {rank}", *out.ravel()[:4], flush=True)
