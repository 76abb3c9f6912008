"""The `shardlite` command: inspect a MindIR model (`info`) or run it once (`run`).

    shardlite info MODEL
    shardlite run MODEL [--input FILE.npy ...] [--save DIR] [--threads N]
    shardlite launch -n N [--timeout S] [--no-prefix] [--no-bind] [--] CMD ARGS...
    shardlite split MODEL -n N -o OUTDIR [--strategy auto|FILE]

Also available as `python -m shardlite`. Exit status: 0 on success, 1 when the model cannot be
loaded or run, 2 for bad command-line arguments.
"""

import argparse
import os
import re
import signal
import sys
from collections import Counter

import numpy as np

from . import _NUMPY_OF, Context, DataType, Model, ModelType, __version__
from .launch import add_arguments as launch_args
from .launch import run_args as launch_run

# How many values of each output `run` prints (as the MindSpore Lite sample does).
_SHOWN_VALUES = 10


def _load(path, threads=0):
    """A built Model (default CPU context with `threads` workers)."""
    context = Context()
    context.cpu.thread_num = threads
    model = Model()
    model.build_from_file(path, ModelType.MINDIR, context)
    return model


def _human_bytes(n):
    """n bytes as a short human-readable string."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def _describe(tensor):
    """'name  dtype  [shape]' for one input or output."""
    return f"{tensor.name}  {tensor.dtype.name.lower()}  {tensor.shape}"


def _info(args):
    """Prints what a model is made of."""
    model = _load(args.model)
    raw = model._model
    print(f"model:      {args.model}")
    print(f"producer:   {raw.producer or '(not recorded)'}")
    print(f"shardlite:  {__version__}")
    for title, tensors in (("inputs", model.get_inputs()), ("outputs", model.get_outputs())):
        print(f"{title}:")
        for t in tensors:
            print(f"  {_describe(t)}")
    ops = Counter(raw.node_ops())
    print(f"ops ({sum(ops.values())} nodes, {len(ops)} kinds):")
    width = max((len(op) for op in ops), default=0)
    for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<{width}}  {count}")
    print(f"parameters: {raw.weight_count} tensors, {_human_bytes(raw.weight_bytes)}")
    print(f"activations: {_human_bytes(raw.arena_bytes)} arena")
    return 0


def _random_input(tensor, rng):
    """Random data for a model input of fully known shape."""
    if any(d < 0 for d in tensor.shape):
        raise ValueError(f"input '{tensor.name}' has dynamic shape {tensor.shape}; pass its data "
                         "with --input FILE.npy")
    if tensor.dtype == DataType.BFLOAT16:
        # bfloat16 data is the top 16 bits of float32 values.
        bits = rng.standard_normal(tensor.shape).astype(np.float32).view(np.uint32)
        return (bits >> 16).astype(np.uint16)
    np_dtype = _NUMPY_OF[tensor.dtype]
    if np_dtype.kind == "f":
        return rng.standard_normal(tensor.shape).astype(np_dtype)
    if np_dtype.kind == "b":
        return rng.random(tensor.shape) < 0.5
    # Integers: small non-negative values, valid as indices into most axes.
    return rng.integers(0, 4, size=tensor.shape).astype(np_dtype)


def _sanitise(name):
    """A file-name-safe version of a tensor name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "output"


def _run(args):
    """Runs a model once and prints (and optionally saves) its outputs."""
    model = _load(args.model, args.threads)
    inputs = model.get_inputs()
    if args.input:
        if len(args.input) != len(inputs):
            raise ValueError(f"the model has {len(inputs)} inputs, but {len(args.input)} "
                             "--input files were given")
        data = [np.load(path, allow_pickle=False) for path in args.input]
    else:
        rng = np.random.default_rng(0)
        data = [_random_input(t, rng) for t in inputs]
    outputs = model.predict(data)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    for i, out in enumerate(outputs):
        values = out.get_data_to_numpy().flatten()
        print(f"tensor's name is:{out.name} shape is:{out.shape} data size is:{out.data_size} "
              f"tensor elements num is:{out.element_num}")
        print("output data is:", " ".join(str(v) for v in values[:_SHOWN_VALUES]))
        if args.save:
            path = os.path.join(args.save, f"{i}_{_sanitise(out.name)}.npy")
            np.save(path, out.get_data_to_numpy())
            print(f"saved {path}")
    return 0


def _split(args):
    """Cuts a model into tensor-parallel rank models and prints the report."""
    from .split import split

    print(split(args.model, args.n, args.o, strategy=args.strategy))
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="shardlite",
                                     description="Inspect, run and split MindSpore MindIR models, and launch distributed jobs.")
    parser.add_argument("--version", action="version", version=f"shardlite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="show a model's inputs, outputs, ops and weights")
    info.add_argument("model", help="the .mindir file")
    info.set_defaults(handler=_info)
    run = commands.add_parser("run", help="run a model once on random or given inputs")
    run.add_argument("model", help="the .mindir file")
    run.add_argument("--input", action="append", metavar="FILE.npy",
                     help="data of the next model input (repeat once per input, in order)")
    run.add_argument("--save", metavar="DIR", help="save outputs as DIR/<index>_<name>.npy")
    run.add_argument("--threads", type=int, default=0, metavar="N",
                     help="worker threads (default 0: one per CPU)")
    run.set_defaults(handler=_run)
    launch = commands.add_parser("launch", help="run the N ranks of a distributed job here",
                                 description="Run the ranks of a job on this host.")
    launch_args(launch)
    launch.set_defaults(handler=launch_run)
    split = commands.add_parser("split", help="cut a model into N tensor-parallel rank models",
                                description="Write OUTDIR/<stem><r>.mindir for r < N, each with "
                                "its own weight slices and the collectives joining them.")
    split.add_argument("model", help="the full .mindir file")
    split.add_argument("-n", type=int, required=True, metavar="N", help="number of ranks")
    split.add_argument("-o", required=True, metavar="OUTDIR", help="where the rank models go")
    split.add_argument("--strategy", default="auto", metavar="auto|FILE",
                       help="auto (default) or a JSON file: "
                       '{"weights": {"<name>": {"split": <axis>} | "replicate"}}')
    split.set_defaults(handler=_split)
    return parser


def main(argv=None):
    """Entry point of the `shardlite` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status = args.handler(args)
        if sys.stdout is not None:  # (None: started with its output closed)
            sys.stdout.flush()  # a broken pipe shows here, not at exit
        return status
    except BrokenPipeError:  # the reader left (`| head`): end quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (RuntimeError, ValueError, TypeError, OSError) as e:
        print(f"shardlite: error: {e}", file=sys.stderr)
        return 1
