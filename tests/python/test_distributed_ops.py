"""The communication ops end to end, with real rank processes: every collective and reduction at 2
and 4 ranks, on per-rank models written with shardlite.builder and re-saved with Model.save,
against numpy.

Each job runs every case in one launch (one process per rank, started here with the SHARDLITE_*
variables, or under mpirun for the MPI backend): the ranks build their case models in the same
order, predict twice (the same bits both times), save each model with Model.save, build the
saved copy and predict again, and
leave their outputs as .npy files that the tests compare. Sums are checked exactly against
numpy adding the ranks' inputs in rank order in float32 (the order the communicator promises),
and results that are the same on every rank must be bit-identical across ranks.

Run as a script (`python test_distributed_ops.py FOLDER`) it is one rank of a job."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
WORLD_GROUPS = ("hccl_world_group", "nccl_world_group", "mccl_world_group")
F32 = np.float32
JOB_PREFIX = "tdo%d" % os.getpid()  # this test run's job ids (and so its /dev/shm names)


# ---- the rank side ----

def _rank_main(folder):
    import shardlite as mslite

    info = mslite.distributed()
    rank = info["rank"]
    with open(os.path.join(folder, "cases.json")) as f:
        cases = json.load(f)
    ctx = mslite.Context()
    ctx.cpu.thread_num = 1
    keep = []  # every model stays alive: communicators are reused, not re-made per case
    for case in cases:
        stem = os.path.join(folder, "%s.r%d" % (case["name"], rank))
        if not os.path.exists(stem + ".mindir"):
            continue  # this rank takes no part
        inputs = [np.load("%s.in%d.npy" % (stem, i)) for i in range(case["n_in"])]
        for tag, path in (("", stem + ".mindir"), ("re", stem + ".resaved.mindir")):
            model = mslite.Model()
            model.build_from_file(path, mslite.ModelType.MINDIR, ctx)
            tensors = model.get_inputs()
            for t, x in zip(tensors, inputs):
                t.set_data_from_numpy(x)
            outs = [o.get_data_to_numpy() for o in model.predict(tensors)]
            again = [o.get_data_to_numpy() for o in model.predict(tensors)]
            for j, (out, out2) in enumerate(zip(outs, again)):
                if out.tobytes() != out2.tobytes():
                    raise AssertionError("%s: a second predict differs" % stem)
                np.save("%s.%sout%d.npy" % (stem, tag, j), out)
            if not tag:
                model.save(stem + ".resaved.mindir")
            keep.append(model)
    with open(os.path.join(folder, "info.r%d.json" % rank), "w") as f:
        json.dump(info, f)


# ---- launching ----

def _rank_env(extra):
    drop = ("OMPI_", "PMI_", "PMIX_", "SLURM_", "SHARDLITE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["SHARDLITE_COMM_TIMEOUT"] = "20"  # a broken case fails in seconds, not a minute
    env["OMP_NUM_THREADS"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_job(folder, n, mpi=False, env=None, hosts=1):
    """Starts the n ranks of a job on `folder` (under mpirun with the MPI backend, chosen by
    configuration on one host or by the library across two, see two_hosts); returns what
    wait_job needs."""
    env = _rank_env(env or {})
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), str(folder)]
    if mpi:
        mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(n)]
        if hosts == 2:
            from launching import two_hosts  # (not in the ranks: they run this file too)

            mpirun += two_hosts(pathlib.Path(folder), n)
        else:
            env["SHARDLITE_COMM_BACKEND"] = "mpi"
        return [subprocess.Popen(mpirun + cmd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)]
    env.setdefault("SHARDLITE_JOB_ID", JOB_PREFIX + uuid.uuid4().hex[:8])
    procs = []
    for r in range(n):
        e = dict(env, SHARDLITE_RANK=str(r), SHARDLITE_WORLD_SIZE=str(n))
        procs.append(subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def wait_job(procs, timeout=60):
    """Waits for every process; fails with their output unless all exit 0."""
    deadline = time.monotonic() + timeout
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, _ = p.communicate()
            out = "TIMEOUT\n" + out
        outs.append((p.returncode, out))
    if any(rc != 0 for rc, _ in outs):
        pytest.fail("\n".join("process %d: exit %s\n%s" % (i, rc, out)
                              for i, (rc, out) in enumerate(outs)))


# ---- the cases (models and inputs per rank, and what numpy expects) ----

def rank_order(arrays, op):
    """The reduction of arrays[0], arrays[1], ... in that order, in their own dtype (float16:
    accumulated in float32, rounded once)."""
    half = arrays[0].dtype == np.float16
    acc = arrays[0].astype(F32) if half else arrays[0].copy()
    for a in arrays[1:]:
        a = a.astype(F32) if half else a
        if op == "sum":
            acc = acc + a
        elif op == "prod":
            acc = acc * a
        elif op == "max":
            acc = np.where(a > acc, a, acc)
        else:
            acc = np.where(a < acc, a, acc)
    return acc.astype(np.float16) if half else acc


def _values(rng, shape, dtype, op="sum"):
    if np.dtype(dtype).kind == "f":
        if op == "prod":  # near 1: products of four stay finite and keep their low bits
            return rng.uniform(0.5, 1.5, shape).astype(dtype)
        # magnitudes that differ by 10^6: the order of the additions changes the bits
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
    return rng.integers(-1000, 1000, shape).astype(dtype)


class Job:
    """The cases of one job: writes each rank's model and inputs, and keeps numpy's answers."""

    def __init__(self, folder, n, world="hccl_world_group", small=False, seed=0, mpi=False):
        from shardlite.builder import GraphBuilder

        self.GraphBuilder = GraphBuilder
        self.folder, self.n, self.world = pathlib.Path(folder), n, world
        self.rng = np.random.default_rng([seed, n])
        self.cases = []
        self.expect = {}  # name -> {rank: [arrays]}
        self.shared = set()  # names whose outputs must be the same on every rank
        self.ordered = set()  # float sums and products of more than two ranks: order matters
        self.add_all(small, mpi)
        with open(self.folder / "cases.json", "w") as f:
            json.dump(self.cases, f)

    def _write(self, name, rank, builder, inputs, expect):
        stem = self.folder / ("%s.r%d" % (name, rank))
        builder.save(str(stem) + ".mindir")
        for i, x in enumerate(inputs):
            np.save("%s.in%d.npy" % (stem, i), x)
        self.expect.setdefault(name, {})[rank] = expect
        if not self.cases or self.cases[-1]["name"] != name:
            self.cases.append({"name": name, "n_in": len(inputs)})

    def unary(self, name, prim, attrs, inputs, expect, ranks=None, shared=True):
        """A model y = prim(x) per rank; inputs/expect: {rank: array}."""
        for r in (ranks if ranks is not None else range(self.n)):
            b = self.GraphBuilder("g")
            x = b.input("x", list(inputs[r].shape), inputs[r].dtype)
            b.output(b.op(prim, [x], dict(attrs)))
            self._write(name, r, b, [inputs[r]], [expect[r]])
        if shared:
            self.shared.add(name)

    def add_all(self, small, mpi):
        n, rng = self.n, self.rng
        world = {"group": self.world}
        # AllReduce: every reduction, float32 (one-shot; two-shot in pieces), float16, int32
        shapes = [("allreduce_%s", [3, 5], F32)]
        if not small:
            shapes.append(("allreduce_%s_large", [3, 131072 + 5], F32))  # 1.5 MiB: two pieces
        shapes.append(("allreduce_%s_i32", [7], np.int32))
        if not mpi:  # MPI has no float16 reductions (the MPI backend refuses them)
            shapes.append(("allreduce_%s_f16", [4, 33], np.float16))
        # an AllReduce as MindSpore's parallel pass exports it: the world's ranks as group_ranks
        # "WORLD_GROUP" and as group_rank_ids (uint32), and attributes shardlite has no use for
        xs = {r: _values(rng, [3, 5], F32) for r in range(n)}
        exported = dict(world, op="sum", fusion=1, index=0, no_eliminate=True,
                        group_ranks="WORLD_GROUP", group_rank_ids=tuple(map(np.uint32, range(n))))
        want = rank_order([xs[r] for r in range(n)], "sum")
        self.unary("allreduce_exported", "AllReduce", exported, xs, {r: want for r in range(n)})
        if n > 2:
            self.ordered.add("allreduce_exported")
        for fmt, shape, dt in shapes:
            for op in ("sum", "max", "min", "prod"):
                if dt != F32 and op in ("max", "prod") or fmt.endswith("large") and op == "min":
                    continue
                xs = {r: _values(rng, shape, dt, op) for r in range(n)}
                want = rank_order([xs[r] for r in range(n)], op)
                if dt != np.int32 and op in ("sum", "prod") and n > 2:
                    self.ordered.add(fmt % op)
                self.unary(fmt % op, "AllReduce", dict(world, op=op, fusion=0), xs,
                           {r: want for r in range(n)})
        # bool: a sum is an OR, a product an AND (numpy's any and all over the ranks)
        xs = {r: rng.integers(0, 2, [9]).astype(bool) for r in range(n)}
        stack = np.stack([xs[r] for r in range(n)])
        for op, want in (("sum", stack.any(0)), ("prod", stack.all(0))):
            self.unary("allreduce_%s_bool" % op, "AllReduce", dict(world, op=op, fusion=0), xs,
                       {r: want for r in range(n)})
        # 8-bit integers: sums and products wrap around, as numpy's do (64 elements: Open MPI's
        # AVX reductions saturate from 32 up, 100 + 100 giving 127)
        for dt in (np.int8, np.uint8):
            xs = {r: _values(rng, [64], dt) for r in range(n)}
            for op in ("sum", "prod"):
                want = rank_order([xs[r] for r in range(n)], op)
                self.unary("allreduce_%s_%s" % (op, np.dtype(dt).name), "AllReduce",
                           dict(world, op=op, fusion=0), xs, {r: want for r in range(n)})
        # AllGather: axis 0, rank order
        xs = {r: _values(rng, [2, 3, 5], F32) for r in range(n)}
        cat = np.concatenate([xs[r] for r in range(n)])
        self.unary("allgather", "AllGather", dict(world, rank_size=n, fusion=0), xs,
                   {r: cat for r in range(n)})
        # ReduceScatter: rank r gets rows [r*k, (r+1)*k) of the rank-order reduction
        for op in ("sum", "max"):
            xs = {r: _values(rng, [3 * n, 4], F32) for r in range(n)}
            red = rank_order([xs[r] for r in range(n)], op)
            if op == "sum" and n > 2:
                self.ordered.add("reducescatter_sum")
            self.unary("reducescatter_" + op, "ReduceScatter",
                       dict(world, op=op, rank_size=n, fusion=0), xs,
                       {r: red[3 * r:3 * r + 3] for r in range(n)}, shared=False)
        # AlltoAll with split_dim != concat_dim: split x along split_dim into n pieces, piece j
        # goes to rank j, which concatenates what it receives along concat_dim in rank order
        for sd, cd in ((1, 0), (0, 2)):
            shape = [2, 3, 4]
            shape[sd] *= n
            xs = {r: _values(rng, shape, F32) for r in range(n)}
            want = {j: np.concatenate([np.split(xs[r], n, axis=sd)[j] for r in range(n)],
                                      axis=cd) for j in range(n)}
            self.unary("alltoall_%d%d" % (sd, cd), "AlltoAll",
                       dict(world, split_count=n, split_dim=sd, concat_dim=cd, rank_size=n), xs,
                       want, shared=False)
        self.add_chained()
        self.add_broadcast()
        self.add_send_receive()
        if n == 4:
            self.add_subgroups()

    def add_chained(self):
        """AllReduces right after the op computing their input (one-shot, and two-shot in one
        piece), and one whose input has another use after it."""
        n = self.n
        xs = {r: (_values(self.rng, [4, 33], F32), _values(self.rng, [2, 40000], F32))
              for r in range(n)}
        s1 = rank_order([-xs[r][0] for r in range(n)], "sum")
        s2 = rank_order([-xs[r][1] for r in range(n)], "sum")
        y3 = -s1
        s3 = rank_order([y3] * n, "sum")
        ar = {"op": "sum", "group": self.world, "fusion": 0}
        for r in range(n):
            b = self.GraphBuilder("g")
            a = b.input("a", [4, 33], F32)
            c = b.input("c", [2, 40000], F32)
            o1 = b.op("AllReduce", [b.op("Neg", [a])], ar)
            o2 = b.op("AllReduce", [b.op("Neg", [c])], ar)
            y = b.op("Neg", [o1])
            o3 = b.op("Add", [b.op("AllReduce", [y], ar), y])
            b.output(o1, o2, o3)
            self._write("chained", r, b, list(xs[r]), [s1, s2, s3 + y3])
        if n > 2:
            self.ordered.add("chained")
        self.shared.add("chained")

    def add_broadcast(self):
        """Broadcast of a tuple (float32 and int32) from the last rank."""
        n, root = self.n, self.n - 1
        xs = {r: (_values(self.rng, [4, 6], F32), _values(self.rng, [5], np.int32))
              for r in range(n)}
        for r in range(n):
            b = self.GraphBuilder("g")
            a = b.input("a", [4, 6], F32)
            c = b.input("c", [5], np.int32)
            t = b.op("MakeTuple", [a, c])
            ya, yc = b.op("Broadcast", [t], {"root_rank": root, "group": self.world}, n_out=2)
            b.output(ya, yc)
            self._write("broadcast", r, b, list(xs[r]), list(xs[root]))
        self.shared.add("broadcast")

    def add_send_receive(self):
        """Rank r sends to rank r+1 (tag r); rank r+1 receives it: a chain, then back from the
        last rank to rank 0 with a second tag."""
        n = self.n
        xs = {r: _values(self.rng, [3, 4], F32) for r in range(n)}
        for r in range(n):
            b = self.GraphBuilder("g")
            x = b.input("x", [3, 4], F32)
            outs = []
            if r > 0:  # the previous rank's message first: sends never wait for receives
                outs.append(b.op("Receive", [], {"sr_tag": r - 1, "src_rank": r - 1,
                                                 "shape": [3, 4], "dtype": 43,
                                                 "group": self.world}))
            if r + 1 < n:
                outs.append(b.op("Send", [x], {"sr_tag": r, "dest_rank": r + 1,
                                               "group": self.world}))
            if r == n - 1:
                outs.append(b.op("Send", [x], {"sr_tag": 99, "dest_rank": 0,
                                               "group": self.world}))
            if r == 0:
                outs.append(b.op("Receive", [], {"sr_tag": 99, "src_rank": n - 1,
                                                 "shape": [3, 4], "dtype": 43,
                                                 "group": self.world}))
            b.output(*outs)
            want = []
            if r > 0:
                want.append(xs[r - 1])
            if r + 1 < n:
                want.append(xs[r])  # Send passes its input through
            if r == n - 1:
                want.append(xs[r])
            if r == 0:
                want.append(xs[n - 1])
            self._write("sendrecv", r, b, [xs[r]], want)
        # every rank sends two messages to the next before it receives the previous rank's two:
        # a Send must not wait for its peer's Receive while the mailbox has room (4 slots of
        # 64 KiB: two messages of 128 KiB fill it), under either backend (MPI itself buffers
        # only up to its eager limit, 4 KiB)
        for name, shape in (("sendrecv_ahead", [3, 4]), ("sendrecv_ahead_256k", [256, 128])):
            xs = {r: _values(self.rng, shape, F32) for r in range(n)}
            for r in range(n):
                b = self.GraphBuilder("g")
                x = b.input("x", shape, F32)
                nxt, prev = (r + 1) % n, (r - 1) % n
                outs = [b.op("Send", [x], {"sr_tag": 1, "dest_rank": nxt, "group": self.world})]
                outs.append(b.op("Send", [b.op("Neg", [x])],
                                 {"sr_tag": 2, "dest_rank": nxt, "group": self.world}))
                for tag in (1, 2):
                    outs.append(b.op("Receive", [], {"sr_tag": tag, "src_rank": prev,
                                                     "shape": shape, "dtype": 43,
                                                     "group": self.world}))
                b.output(*outs)
                self._write(name, r, b, [xs[r]], [xs[r], -xs[r], xs[prev], -xs[prev]])
        # rank 0 sends to rank 1 alone, then every rank runs an AllReduce: point-to-point
        # messages are not collectives, so they must not shift the ranks' collective counts
        xs = {r: _values(self.rng, [3, 4], F32) for r in range(n)}
        s = rank_order([xs[0], xs[0]] + [xs[r] for r in range(2, n)], "sum")
        for r in range(n):
            b = self.GraphBuilder("g")
            x = b.input("x", [3, 4], F32)
            if r == 0:
                x = b.op("Send", [x], {"sr_tag": 7, "dest_rank": 1, "group": self.world})
            elif r == 1:
                x = b.op("Receive", [], {"sr_tag": 7, "src_rank": 0, "shape": [3, 4],
                                         "dtype": 43, "group": self.world})
            b.output(b.op("AllReduce", [x], {"op": "sum", "group": self.world, "fusion": 0}))
            self._write("sendrecv_pair", r, b, [xs[r]], [s])
        if n > 2:
            self.ordered.add("sendrecv_pair")
        self.shared.add("sendrecv_pair")

    def add_subgroups(self):
        """Two sub-groups of a 4-rank world, {0, 2} and {1, 3}: group_ranks as MindSpore's
        string and as an int tuple, group named like MindSpore's "<size>-<hash>"."""
        xs = {r: _values(self.rng, [8, 3], F32) for r in range(4)}
        for ranks, group_ranks in (((0, 2), "0-2"), ((1, 3), [1, 3])):
            a, c = ranks
            s = rank_order([xs[a], xs[c]], "sum")
            g = {"group": "2-%d%d" % ranks, "group_ranks": group_ranks}
            self.unary("sub_allreduce", "AllReduce", dict(g, op="sum", fusion=0), xs,
                       {a: s, c: s}, ranks=ranks)
            cat = np.concatenate([xs[a], xs[c]])
            self.unary("sub_allgather", "AllGather", dict(g, rank_size=2), xs,
                       {a: cat, c: cat}, ranks=ranks)
        # as MindSpore's exports give the ranks of a sub-group op that its parallel pass left
        # without group_ranks: group_rank_ids, a tuple of uint32; and ranks with no group name
        for ranks in ((0, 2), (1, 3)):
            a, c = ranks
            s = rank_order([xs[a], xs[c]], "sum")
            g = {"group": "2-9%d%d" % ranks, "group_rank_ids": tuple(map(np.uint32, ranks))}
            self.unary("sub_allreduce_ids", "AllReduce", dict(g, op="sum"), xs, {a: s, c: s},
                       ranks=ranks)
            self.unary("sub_allreduce_unnamed", "AllReduce", {"group_ranks": list(ranks),
                                                              "op": "sum"},
                       xs, {a: s, c: s}, ranks=ranks)
        for name in ("sub_allreduce", "sub_allgather", "sub_allreduce_ids",
                     "sub_allreduce_unnamed"):
            self.shared.discard(name)  # the same per group only: checked below

    # ---- results ----
    def outputs(self, name, rank, tag=""):
        stem = self.folder / ("%s.r%d" % (name, rank))
        return [np.load("%s.%sout%d.npy" % (stem, tag, j))
                for j in range(len(self.expect[name][rank]))]

    def check(self, names=None, any_order=False):
        """Every case: equal to numpy's answer (exactly), the re-saved model the same bits as
        the original, bit-identical across ranks where the result is shared. any_order: the
        backend may reduce in another order (MPI): order-dependent results need only be close."""
        for name in names or self.expect:
            loose = any_order and name in self.ordered
            first = None
            for rank, want in self.expect[name].items():
                got = self.outputs(name, rank)
                again = self.outputs(name, rank, "re")
                assert len(got) == len(want), name
                for j, (g, a, w) in enumerate(zip(got, again, want)):
                    where = "%s rank %d output %d" % (name, rank, j)
                    assert g.dtype == w.dtype and g.shape == w.shape, \
                        "%s: %s%s, numpy %s%s" % (where, g.dtype, g.shape, w.dtype, w.shape)
                    if loose:
                        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max(),
                                                   err_msg=where)
                    else:
                        assert np.array_equal(g, w), "%s differs from numpy by up to %g" % (
                            where, np.abs(g.astype(np.float64) - w).max())
                        assert g.view(np.uint8).tobytes() == w.view(np.uint8).tobytes(), \
                            where + ": not numpy's bytes (a bool must be 0 or 1)"
                    assert g.tobytes() == a.tobytes(), "%s: the re-saved model differs" % where
                if name in self.shared and not loose:
                    blob = b"".join(g.tobytes() for g in got)
                    assert first is None or blob == first, "%s: rank %d differs" % (name, rank)
                    first = blob


def run_job(folder, n, mpi=False, world="hccl_world_group", small=False, env=None, hosts=1):
    job = Job(folder, n, world, small, mpi=mpi)
    wait_job(start_job(folder, n, mpi, env, hosts))
    return job


def shm_entries():
    """This test run's shared-memory segments."""
    return [p for p in os.listdir("/dev/shm") if p.startswith("shardlite-" + JOB_PREFIX)]


@pytest.fixture(scope="module")
def shm_jobs(tmp_path_factory, mslite):
    """The full case list at 2 and 4 ranks (shared memory), each run once for the module."""
    jobs = {}
    for n in (2, 4):
        folder = tmp_path_factory.mktemp("dist%d" % n)
        jobs[n] = run_job(folder, n, world=WORLD_GROUPS[n % 3])
    assert shm_entries() == [], "segments left in /dev/shm"
    return jobs


CASES = ["allreduce_exported", "allreduce_sum", "allreduce_max", "allreduce_min", "allreduce_prod",
         "allreduce_sum_large", "allreduce_max_large", "allreduce_prod_large",
         "allreduce_sum_f16", "allreduce_min_f16", "allreduce_sum_i32", "allreduce_min_i32",
         "allreduce_sum_int8", "allreduce_prod_int8", "allreduce_sum_uint8", "allreduce_prod_uint8",
         "allgather", "reducescatter_sum", "reducescatter_max", "alltoall_10", "alltoall_02",
         "chained", "broadcast", "sendrecv", "sendrecv_ahead", "sendrecv_ahead_256k", "sendrecv_pair"]


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("case", CASES)
def test_op(shm_jobs, n, case):
    shm_jobs[n].check([case])


def test_subgroups(shm_jobs):
    job = shm_jobs[4]
    job.check(["sub_allreduce", "sub_allgather", "sub_allreduce_ids", "sub_allreduce_unnamed"])
    # the two groups computed different things: no cross-talk between them
    for name in ("sub_allreduce", "sub_allreduce_ids", "sub_allreduce_unnamed"):
        assert not np.array_equal(job.outputs(name, 0)[0], job.outputs(name, 1)[0])


def test_rank_discovery(shm_jobs):
    for n, job in shm_jobs.items():
        infos = [json.loads((job.folder / ("info.r%d.json" % r)).read_text()) for r in range(n)]
        assert [i["rank"] for i in infos] == list(range(n))
        assert {(i["size"], i["source"], i["backend"]) for i in infos} == {(n, "launcher", "shm")}
        assert len({i["job"] for i in infos}) == 1


def test_resaved_names_world_group(shm_jobs):
    """Model.save writes the world group by the name the model used."""
    job = shm_jobs[2]
    data = (job.folder / "allgather.r0.resaved.mindir").read_bytes()
    assert job.world.encode() in data


@pytest.mark.parametrize("world", WORLD_GROUPS)
def test_world_group_names(tmp_path, mslite, world):
    job = run_job(tmp_path, 2, world=world, small=True)
    job.check(["allreduce_sum", "allgather", "broadcast"])


def test_two_jobs_at_once(tmp_path, mslite):
    """Two 2-rank jobs at once on one host, one with small slots (so every collective goes in
    pieces): they must not see each other's segments."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ja, jb = Job(a, 2, seed=1), Job(b, 2, seed=2)
    # different inputs per job, same models: a mix-up would show as wrong sums
    pa = start_job(a, 2)
    pb = start_job(b, 2, env={"SHARDLITE_SHM_SLOT_BYTES": 8192})
    wait_job(pa)
    wait_job(pb)
    ja.check()
    jb.check()


@pytest.mark.skipif(not shutil.which("mpirun"), reason="mpirun is not installed")
@pytest.mark.parametrize("n, hosts", [(2, 1), (4, 1), (2, 2), (4, 2)])
def test_mpi_backend(tmp_path, mslite, n, hosts):
    """The same cases (float16 reductions aside) under mpirun with the MPI backend: on one host
    (chosen by configuration), and on two hosts (as far as Open MPI can tell: see two_hosts),
    where the library chooses it itself, over TCP. Sums of two ranks are exact whatever
    order MPI adds in; four ranks check allclose for sums and products (MPI may add in a tree)
    and exact results for everything else."""
    import shardlite

    if not (pathlib.Path(shardlite.__file__).parent / "libshardlite_mpi.so").exists():
        pytest.skip("shardlite was built without the MPI backend")
    job = run_job(tmp_path, n, mpi=True, world="nccl_world_group", small=True, hosts=hosts)
    job.check(any_order=True)
    infos = [json.loads((tmp_path / ("info.r%d.json" % r)).read_text()) for r in range(n)]
    assert {(i["source"], i["backend"]) for i in infos} == {("openmpi", "mpi")}


if __name__ == "__main__":
    _rank_main(sys.argv[1])
