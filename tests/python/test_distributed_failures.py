"""Failures in a 2-rank job under `shardlite launch`: a rank killed mid-run, a rank that raises
before its first collective, ranks whose models disagree, a missing model file. In every case
all processes end, the launcher exits non-zero naming the rank within seconds (with the default
60 s communicator deadline: the failure is noticed by dead-peer checks, fingerprints or the
launcher, not by the deadline) and the job leaves nothing in /dev/shm. And Ctrl-C (SIGINT) to a
rank started without the launcher, while it waits for another. Under mpirun with the MPI
backend: the deadline and Ctrl-C end its waits too."""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from conftest import IN_CI, launcher_free_env
from launching import (WORKER, launch, launch_env, matmul_allreduce, rank_lines, two_hosts,
                       row_split_models, save_rank_model, shm_entries, wait_gone)

# Far below the 60 s deadline: failures must not be found by waiting it out.
WALL_LIMIT_S = 20

W = np.random.default_rng(5).uniform(-1, 1, (8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def models(mslite, tmp_path_factory):
    """A good 2-rank MatMul + AllReduce job: returns the model stem (rank r: <stem>r.mindir)."""
    tmp = tmp_path_factory.mktemp("models")
    return str(row_split_models(tmp, W))[:-len(".mindir")]


def run_job(stem, *worker_args):
    """Launches the worker on 2 ranks; checks what every failure must satisfy and returns the
    launcher's CompletedProcess."""
    proc, wall = launch(["-n", 2, sys.executable, WORKER, stem, *worker_args])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert wall < WALL_LIMIT_S, f"took {wall:.1f} s\n{out}"
    starts = re.findall(r"start rank (\d) pid (\d+) job (\w+)", proc.stdout)
    assert sorted(int(r) for r, _, _ in starts) == [0, 1], out
    assert not wait_gone([int(pid) for _, pid, _ in starts]), out
    jobs = {job for _, _, job in starts}
    assert len(jobs) == 1, out
    assert not shm_entries(jobs.pop()), out
    return proc


def assert_right_sums(proc):
    """Both ranks of a successful job printed the first values of ones @ W."""
    sums = (np.ones((2, W.shape[0]), np.float32) @ W).ravel()[:4]
    for r in (0, 1):
        done = [ln for ln in rank_lines(proc.stdout, r) if ln.startswith(f"done rank {r}")]
        assert len(done) == 1, proc.stdout + proc.stderr
        np.testing.assert_allclose([float(v) for v in done[0].split()[3:]], sums, rtol=1e-5)


def launcher_says(proc):
    """The launcher's own final line (the last 'shardlite launch:' line of stderr)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("shardlite launch: ")]
    assert lines, proc.stderr
    return lines[-1]


def test_rank_killed_mid_run(models):
    # rank 1 dies after its first predict while rank 0 keeps predicting for up to 30 s
    proc = run_job(models, "--die-after-first", 1, "--loop", 30)
    assert proc.returncode == 128 + 9
    assert re.match(r"shardlite launch: rank 1 was killed by SIGKILL", launcher_says(proc))
    # rank 0 noticed the death itself (dead-peer check), naming rank 1
    assert re.search(r"rank 1 \(pid \d+\) died", "\n".join(rank_lines(proc.stderr, 0))), \
        proc.stderr


def test_rank_raises_before_first_collective(models):
    proc = run_job(models, "--raise-on", 1)
    assert proc.returncode == 1
    assert launcher_says(proc) == "shardlite launch: rank 1 exited with code 1"
    assert "fails before its first collective" in "\n".join(rank_lines(proc.stderr, 1))


@pytest.mark.parametrize("second", ["model", "thread", "runner"])
def test_second_predict_refused_during_a_collective(models, second):
    """Rank 0 predicts with a second model of its file, or with the same model (or
    ModelParallelRunner) from a second thread, while its first predict waits in its AllReduce
    for a stalled rank 1: the second fails at once, naming the rule (its collective would take
    the first's turn in the order every rank must keep), and the first completes with the
    right sums on both ranks."""
    proc, _wall = launch(["-n", 2, sys.executable, WORKER, models, "--stall", 1, 2,
                          "--second", second])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    said = [ln for ln in rank_lines(proc.stdout, 0) if ln.startswith("second:")]
    assert len(said) == 1, out
    want = {"model": r"predict failed! .*node '.*' \(AllReduce\): rank 0: another model of "
                     r"this process is predicting in this group",
            "thread": r"predict failed! Error is another thread is predicting with this model",
            "runner": r"predict failed! Error is another thread is predicting with this runner"}
    assert re.search(want[second], said[0]), out
    assert_right_sums(proc)


def test_models_built_on_one_rank_only_do_not_count(models):
    """Rank 0 alone first builds a model of its file that never predicts (as a
    ModelParallelRunner's probe does where the CPUs ask for several workers): the ranks'
    models are numbered by their first predicts, not their builds, so the job runs."""
    proc, _wall = launch(["-n", 2, sys.executable, WORKER, models, "--extra-build", 0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_right_sums(proc)


def test_ranks_predicting_with_different_models(models):
    """Both ranks build two models of the same files and predict with the first; then rank 1
    predicts with its second: the fingerprints carry each model's number in the group (in the
    order of their first predicts), so both ranks fail naming the two models instead of adding
    one model's input to the other's."""
    proc = run_job(models, "--other-model", 1)
    for r in (0, 1):
        # its own message, or the other rank's ("rank N failed: ...") when that rank found the
        # mismatch first: both name each rank's model
        err = "\n".join(rank_lines(proc.stderr, r) + rank_lines(proc.stdout, r))
        mismatch = [ln for ln in err.splitlines() if "collective mismatch at #2: " in ln]
        assert mismatch, proc.stdout + proc.stderr
        for k, model in ((0, 1), (1, 2)):
            assert f"rank {k} runs AllReduce(sum, float32, 6) of model #{model}" in mismatch[-1], \
                proc.stdout + proc.stderr


def test_missing_model_file(models, tmp_path):
    stem = tmp_path / "Half"
    (tmp_path / "Half0.mindir").write_bytes(open(models + "0.mindir", "rb").read())
    proc = run_job(str(stem), "--loop", 30)
    assert proc.returncode == 1
    assert launcher_says(proc).startswith("shardlite launch: rank 1 exited with code 1")
    assert ("model_path does not exist! (%r, on rank 1 of 2)" % (str(stem) + "1.mindir")
            in "\n".join(rank_lines(proc.stderr, 1))), proc.stderr


def two_allreduces(w_slice, first, second):
    from shardlite.builder import GraphBuilder

    b = GraphBuilder("g")
    x = b.input("x", [2, w_slice.shape[0]], np.float32)
    y = b.op("MatMul", [x, b.param("w", w_slice)], {"transpose_a": False, "transpose_b": False})
    y = b.op("AllReduce", [y], {"op": first, "group": "hccl_world_group"})
    b.output(b.op("AllReduce", [y], {"op": second, "group": "hccl_world_group"}))
    return b


@pytest.mark.parametrize("variant", ["shape", "op order"])
def test_models_disagree(mslite, tmp_path, variant):
    """Fingerprints: each rank's error names both ranks' collectives."""
    halves = W[:4].copy(), W[4:].copy()
    if variant == "shape":
        # rank 1 was exported for batch 3: AllReduce of 9 elements against rank 0's 6
        builders = [matmul_allreduce(halves[0], [2, 4]), matmul_allreduce(halves[1], [3, 4])]
        ops = ["AllReduce(sum, float32, 6)", "AllReduce(sum, float32, 9)"]
    else:
        builders = [two_allreduces(halves[0], "sum", "max"),
                    two_allreduces(halves[1], "max", "sum")]
        ops = ["AllReduce(sum, float32, 6)", "AllReduce(max, float32, 6)"]
    for r, b in enumerate(builders):
        save_rank_model(b, tmp_path / f"Bad{r}.mindir", tmp_path)
    proc = run_job(str(tmp_path / "Bad"))
    assert proc.returncode == 1
    assert re.match(r"shardlite launch: rank [01] exited with code 1", launcher_says(proc))
    for r in (0, 1):
        errors = [ln for ln in rank_lines(proc.stderr, r) if "mismatch" in ln]
        assert errors, proc.stderr
        assert all(op in errors[-1] for op in ops), errors[-1]


def start_rank(stem, rank, job, *args):
    """One rank of a 2-rank job as its own process, as a user starts ranks by hand (SIGINT not
    ignored, even when this test runs where it is, e.g. in a background job)."""
    env = dict(launch_env(SHARDLITE_RANK=rank, SHARDLITE_WORLD_SIZE=2), SHARDLITE_JOB_ID=job)
    return subprocess.Popen([sys.executable, str(WORKER), stem, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt(proc):
    """SIGINT to proc; returns (seconds until it ended (None: not within 10 s), its stdout and
    stderr)."""
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out + err
    return time.monotonic() - t0, out + err


def test_ctrl_c_at_the_rendezvous(models):
    """Rank 0 waits at the rendezvous for a rank 1 that never starts: SIGINT ends it at once
    with KeyboardInterrupt (not at the 60 s deadline), leaving nothing in /dev/shm."""
    job = "intr%s" % uuid.uuid4().hex[:8]
    proc = start_rank(models, 0, job)
    deadline = time.monotonic() + 20
    while not shm_entries(job):  # rank 0 made the segment: it waits for rank 1
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    secs, err = interrupt(proc)
    assert secs is not None and secs < 3, err
    assert "KeyboardInterrupt" in err, err
    assert not shm_entries(job)


@pytest.mark.parametrize("handler", ["default", "quiet"])
def test_ctrl_c_in_a_collective(models, handler):
    """Rank 0 waits in its first AllReduce while rank 1 stalls: SIGINT ends rank 0 at once with
    KeyboardInterrupt (with a SIGINT handler that raises nothing: the handler runs, touching
    the model, and predict raises RuntimeError); rank 1's collective then fails naming rank 0's
    interruption."""
    job = "intr%s" % uuid.uuid4().hex[:8]
    extra = ["--quiet-sigint"] if handler == "quiet" else []
    ranks = [start_rank(models, r, job, "--stall", 1, 6, *extra) for r in (0, 1)]
    try:
        assert ranks[0].stdout.readline().startswith("start rank 0")
        assert ranks[0].stdout.readline().startswith("built rank 0")
        assert ranks[0].stdout.readline().startswith("predicting rank 0")
        time.sleep(0.5)  # rank 0 is in predict, waiting for rank 1
        secs, err = interrupt(ranks[0])
        assert secs is not None and secs < 3, err
        if handler == "default":
            assert "KeyboardInterrupt" in err, err
        else:
            assert "SIGINT handled" in err, err
            assert re.search(r"RuntimeError: predict failed! .*rank 0 was interrupted", err), err
        _out, err1 = ranks[1].communicate(timeout=30)
        assert ranks[1].returncode == 1, err1
        assert re.search(r"rank 0 failed: rank 0 was interrupted while waiting for rank 1", err1), \
            err1
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert not shm_entries(job)


# ---- the MPI backend (mpirun, SHARDLITE_COMM_BACKEND=mpi) ----

MPI_DEADLINE_S = 2


def start_mpi_job(stem, *worker_args, deadline_s=MPI_DEADLINE_S, n=2, script=WORKER,
                  hosts_in=None):
    """script (the worker) on n ranks under mpirun with the MPI backend and the deadline, as if
    on two hosts when hosts_in names a folder for two_hosts' files (Popen)."""
    import shardlite

    mpirun = shutil.which("mpirun")
    plugin = pathlib.Path(shardlite.__file__).parent / "libshardlite_mpi.so"
    for missing, what in ((not mpirun, "mpirun"), (not plugin.exists(), "the MPI backend")):
        if missing:
            if IN_CI:
                pytest.fail(f"{what} is missing (CI=true)")
            pytest.skip(f"{what} is missing")
    env = launch_env(SHARDLITE_COMM_BACKEND="mpi", SHARDLITE_COMM_TIMEOUT=deadline_s)
    cmd = [mpirun, "--allow-run-as-root", "--oversubscribe", "-n", str(n),
           *(two_hosts(hosts_in, n) if hosts_in else []), sys.executable, str(script), stem,
           *map(str, worker_args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc, limit_s):
    """Waits up to limit_s for proc (killing it past that); returns (its stdout + stderr,
    whether it ended in time)."""
    try:
        out, err = proc.communicate(timeout=limit_s)
        return out + err, True
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return out + err, False


@pytest.mark.parametrize("where", ["init", "rendezvous", "collective"])
def test_mpi_waits_have_a_deadline(models, where):
    """Rank 1 comes 30 s late: to its first build (rank 0 waits in MPI_Init), to building its
    model again (the rendezvous of a new group), or to its first predict (a collective). Rank
    0's wait fails at the 2 s deadline naming what it waited in, and mpirun ends the job (rank 0
    leaves without MPI_Finalize, which would wait for rank 1) long before rank 1 would come."""
    late = {"init": "--late", "rendezvous": "--rebuild-late", "collective": "--stall"}[where]
    t0 = time.monotonic()
    out, ended = finish(start_mpi_job(models, late, 1, 30), 25)
    wall = time.monotonic() - t0
    assert ended and wall < 20, f"took {wall:.1f} s\n{out}"
    what = {"init": r"MPI_Init", "rendezvous": r"MPI rendezvous of ranks 0,1",
            "collective": r"MPI AllReduce\(sum, float32, 6\) of model #1, collective #1"}[where]
    whom = "the other ranks" if where == "init" else "rank 1"  # (MPI_Init: MPI's own wait)
    assert re.search(rf"rank 0 waited {MPI_DEADLINE_S} s for {whom} \({what}\): "
                     r"deadline passed \(SHARDLITE_COMM_TIMEOUT\)", out), out
    assert "done rank" not in out, out


def test_mpi_late_rank_after_a_give_up(models):
    """Rank 0 gives up waiting for rank 1 (2 s deadline) but lives on for 60 s; rank 1 comes 8 s
    late. Its fingerprints then arrive at once (rank 0 sent its own before giving up), but rank
    1 must not enter MPI's blocking collective to wait there, without a deadline, for rank 0:
    it fails at its own deadline in the second round, and mpirun ends the job."""
    t0 = time.monotonic()
    out, ended = finish(start_mpi_job(models, "--stall", 1, 8, "--linger", 0, 60), 70)
    wall = time.monotonic() - t0
    assert ended and wall < 40, f"took {wall:.1f} s\n{out}"
    assert re.search(r"failed: .*rank 0 waited 2 s for rank 1 ", out), out
    assert re.search(r"rank 1 waited 2 s for rank 0 \(MPI AllReduce\(sum, float32, 6\) "
                     r"of model #1, collective #1, second round\)", out), out


def test_mpi_rank_raising_ends_the_job(models):
    """Rank 1 raises after its first predict while rank 0 goes on predicting, so waits for it
    (with a 60 s deadline): rank 1 exits with status 1, which skips MPI_Finalize (it would wait
    for rank 0), so mpirun ends the job within seconds."""
    t0 = time.monotonic()
    out, ended = finish(start_mpi_job(models, "--raise-after-first", 1, "--loop", 90,
                                      deadline_s=60), 80)
    wall = time.monotonic() - t0
    assert ended and wall < 40, f"took {wall:.1f} s\n{out}"
    assert "rank 1 fails after its first predict" in out, out
    assert "done rank" not in out, out


def test_ctrl_c_in_an_mpi_collective(models):
    """SIGINT to rank 0 (as Ctrl-C in its terminal) while it waits in its first AllReduce for a
    stalled rank 1 ends it at once with KeyboardInterrupt, and mpirun then ends the job."""
    proc = start_mpi_job(models, "--stall", 1, 30, deadline_s=60)
    pid, seen = None, []
    try:
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"start rank 0 pid (\d+)", line)
            pid = int(m.group(1)) if m else pid
            if "predicting rank 0" in line:
                break
        assert pid, "".join(seen) + proc.stderr.read()
        time.sleep(0.5)  # rank 0 is in predict, waiting for rank 1
        t0 = time.monotonic()
        os.kill(pid, signal.SIGINT)
        assert not wait_gone([pid], 3), "rank 0 still runs 3 s after SIGINT"
        secs = time.monotonic() - t0
    finally:
        out, ended = finish(proc, 15)
    assert ended, out
    assert secs < 3 and "KeyboardInterrupt" in out, out
    assert "done rank" not in out, out


GROUP_ORDER = """
import sys
import time
import shardlite as mslite
rank = mslite.distributed()["rank"]
context = mslite.Context()
context.cpu.thread_num = 1
models = []
try:
    for name in {0: ["sub", "world"], 1: ["world", "sub"], 2: ["world"]}[rank]:
        models.append(mslite.Model())
        models[-1].build_from_file(f"{sys.argv[1]}/{name}{rank}.mindir",
                                   mslite.ModelType.MINDIR, context)
except RuntimeError as e:
    print(e, flush=True)
    time.sleep(3)  # the other failing rank prints too before mpirun ends the job
    sys.exit(1)
"""


def test_mpi_groups_built_in_different_orders(mslite, tmp_path):
    """Three ranks: rank 0 builds a model of group {0, 1}, then one of the world; rank 1 the
    other way round. Their rendezvous messages name their groups, so both fail at once naming
    both groups (instead of pairing the wrong groups and hanging in MPI_Comm_create_group)."""
    from shardlite.builder import GraphBuilder

    groups = {"sub": ((0, 1), {"group": "2-01", "group_ranks": [0, 1]}),
              "world": ((0, 1, 2), {"group": "hccl_world_group"})}
    for name, (ranks, attrs) in groups.items():
        for r in ranks:
            b = GraphBuilder("g")
            x = b.input("x", [2, 4], np.float32)
            b.output(b.op("AllReduce", [x], dict(attrs, op="sum")))
            b.save(str(tmp_path / f"{name}{r}.mindir"))
    script = tmp_path / "group_order.py"
    script.write_text(GROUP_ORDER)
    t0 = time.monotonic()
    out, ended = finish(start_mpi_job(str(tmp_path), n=3, script=script, deadline_s=60), 70)
    assert ended and time.monotonic() - t0 < 40, out
    for mine, theirs, other in (("0,1", "0,1,2", 1), ("0,1,2", "0,1", 0)):
        assert (f"opens the group of ranks {mine} but rank {other} opens ranks {theirs} there"
                in out), out


ALONE_SCRIPT = """
import sys
import numpy as np
import shardlite as mslite
model = mslite.Model()
model.build_from_file(sys.argv[1], mslite.ModelType.MINDIR, mslite.Context())
inputs = model.get_inputs()
inputs[0].set_data_from_numpy(np.ones((2, 4), np.float32))
try:
    print("result", model.predict(inputs)[0].get_data_to_numpy().ravel().tolist())
except RuntimeError as e:
    print("error", e)
"""


def test_a_slice_run_alone(models, tmp_path):
    """A rank's slice started without a launcher, mpirun or rank configuration builds (to be
    inspected or saved) but its predict fails instead of returning the slice's partial sums;
    SHARDLITE_RANK=0 SHARDLITE_WORLD_SIZE=1 runs it alone on purpose (its AllReduce then
    returns its own partial product)."""
    from conftest import launcher_free_env

    script = tmp_path / "alone.py"
    script.write_text(ALONE_SCRIPT)
    run = [sys.executable, str(script), models + "0.mindir"]
    proc = subprocess.run(run, env=launcher_free_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("error "), proc.stdout + proc.stderr
    assert "(AllReduce) needs the other ranks of a distributed job, but this process was " \
           "started alone" in proc.stdout, proc.stdout
    proc = subprocess.run(run, env=launcher_free_env(SHARDLITE_RANK="0", SHARDLITE_WORLD_SIZE="1"),
                          capture_output=True, text=True, timeout=60)
    want = (np.ones((2, 4), np.float32) @ W[:4]).ravel()
    assert proc.stdout.startswith("result"), proc.stdout + proc.stderr
    np.testing.assert_allclose(eval(proc.stdout.split(" ", 1)[1]), want, rtol=1e-6)


BUILD = """
import sys
import shardlite as mslite
rank = mslite.distributed()["rank"]
try:
    mslite.Model().build_from_file(sys.argv[1] + str(rank) + ".mindir", mslite.ModelType.MINDIR,
                                   mslite.Context())
    print("built")
except RuntimeError as e:
    print("error", e)
"""


def build_on_two_ranks(tmp_path, attrs, prim="AllGather"):
    """Builds y = prim(x) with attrs on both ranks of a 2-rank job; returns (the script, the
    models' stem, each rank's output)."""
    from shardlite.builder import GraphBuilder

    b = GraphBuilder("g")
    x = b.input("x", [2, 3], np.float32)
    b.output(b.op(prim, [x], attrs))
    b.save(tmp_path / "m0.mindir")
    b.save(tmp_path / "m1.mindir")
    script = tmp_path / "build.py"
    script.write_text(BUILD)
    proc, _ = launch(["-n", 2, sys.executable, script, tmp_path / "m"])
    return script, tmp_path / "m", ["\n".join(rank_lines(proc.stdout, r)) for r in (0, 1)]


def test_rank_size_must_match_the_group(tmp_path):
    """A collective exported for a group of 4 ranks (its rank_size) fails to build in a job of
    2, naming the node and both sizes, instead of gathering a wrong shape."""
    script, stem, outs = build_on_two_ranks(tmp_path, {"group": "hccl_world_group",
                                                       "rank_size": 4})
    for out in outs:
        assert "was exported for a group of 4 ranks (rank_size), but its group here has 2" in out
    # alone on purpose (a world of 1), the slice builds
    from conftest import launcher_free_env
    alone = subprocess.run([sys.executable, str(script), str(stem)],
                           env=launcher_free_env(SHARDLITE_RANK="0", SHARDLITE_WORLD_SIZE="1"),
                           capture_output=True, text=True, timeout=60)
    assert alone.stdout.strip() == "built", alone.stdout + alone.stderr


@pytest.mark.parametrize("ranks, want", [
    ({}, "node 'g:AllReduce_1': a sub-group without its ranks (group_ranks or group_rank_ids"),
    ({"group_rank_ids": (np.uint32(0), np.uint32(1))},
     "node 'g:AllReduce_1' (AllReduce): its sub-group's group_rank_ids list every rank"),
    ({"group_ranks": "0-1"}, "built")])
def test_sub_group_of_every_rank(tmp_path, ranks, want):
    """An AllReduce on a sub-group named "mine" that lists no ranks, or lists every rank in
    group_rank_ids (what MindSpore's exports list for a group its parallel pass did not make,
    whatever its members): the build fails naming the node, rather than reducing over the wrong
    ranks. Every rank given as group_ranks is meant: it builds."""
    _, _, outs = build_on_two_ranks(tmp_path, dict(ranks, group="mine", op="sum"), "AllReduce")
    for out in outs:
        assert want in out, out


# The start of a rank's script for the models of save_send_receive.
PAIR_RANK = """
import sys
import time
import numpy as np
import shardlite as mslite
rank = mslite.distributed()["rank"]
model = mslite.Model()
model.build_from_file(f"{sys.argv[1]}/p{rank}.mindir", mslite.ModelType.MINDIR, mslite.Context())
inputs = model.get_inputs()
"""


def save_send_receive(folder, shape, received_shape=None, tags=(0, 0)):
    """Writes p0.mindir, which sends x + 1 (float32 of `shape`) to rank 1 with tags[0], and
    p1.mindir, which receives a float32 message of received_shape (default: shape) from rank 0
    with tags[1] and outputs it, then its own input, into folder."""
    from shardlite.builder import GraphBuilder

    b = GraphBuilder("g")
    x = b.input("x", shape, np.float32)
    b.output(b.op("Send", [b.op("Add", [x, b.const(np.float32(1))])],
                  {"sr_tag": tags[0], "dest_rank": 1, "group": "hccl_world_group"}))
    b.save(str(folder / "p0.mindir"))
    b = GraphBuilder("g")
    x = b.input("x", shape, np.float32)
    b.output(b.op("Receive", [], {"sr_tag": tags[1], "src_rank": 0,
                                  "shape": received_shape or shape, "dtype": 43,
                                  "group": "hccl_world_group"}), x)
    b.save(str(folder / "p1.mindir"))


RECEIVE = PAIR_RANK + """
inputs[0].set_data_from_numpy(np.ones((2, 2), np.float32))
model.predict(inputs)
"""


@pytest.mark.parametrize("backend", ["shm", "mpi"])
@pytest.mark.parametrize("sent, received", [(([2, 2], 5), ([3, 4], 5)), (([2, 2], 5), ([2, 2], 6))])
def test_receive_of_another_message(tmp_path, backend, sent, received):
    """Rank 0 sends [2, 2] float32 with tag 5; rank 1 receives another shape or tag: rank 1
    fails at once naming both (not with the sent bytes and garbage after them, nor at the
    deadline), and the job ends."""
    save_send_receive(tmp_path, sent[0], received[0], (sent[1], received[1]))
    script = tmp_path / "receive.py"
    script.write_text(RECEIVE)
    t0 = time.monotonic()
    if backend == "mpi":
        out, ended = finish(start_mpi_job(str(tmp_path), script=script, deadline_s=60), 70)
    else:
        proc, _ = launch(["-n", 2, sys.executable, script, tmp_path], timeout=70)
        out, ended = proc.stdout + proc.stderr, proc.returncode != 0
    assert ended and time.monotonic() - t0 < 30, out
    want = "Receive from rank 0 expects %d bytes with tag %d, rank 0 sent 16 bytes with tag 5" % (
        4 * np.prod(received[0]), received[1])
    assert want in out, out


SEND_AHEAD = PAIR_RANK + """
x = np.arange(32768, dtype=np.float32).reshape(256, 128)
inputs[0].set_data_from_numpy(x)
receiver = sys.argv[2]
if rank == 0:
    model.predict(inputs)
    print("sent", flush=True)
    if receiver == "at once":
        time.sleep(3)  # busy elsewhere: no MPI call
elif receiver != "never":
    time.sleep(1 if receiver == "late" else 0)  # late: rank 0 has come to its exit
    t0 = time.monotonic()
    assert np.array_equal(model.predict(inputs)[0].get_data_to_numpy(), x + 1)
    print("received in %.2f s" % (time.monotonic() - t0), flush=True)
"""


@pytest.mark.parametrize("receiver", ["at once", "late", "never"])
def test_mpi_send_ahead_of_its_receive(tmp_path, receiver):
    """Rank 0 sends 128 KiB (more than MPI's eager limit), its Send returning once the message is
    copied, as the shm backend's does; the ranks run as if on two hosts (TCP: MPI moves such a
    message only while its sender calls into MPI). Rank 1 receives it at once while rank 0 is
    busy for 3 s without MPI: it arrives at once all the same (the backend's thread drives it).
    Rank 1 receives it a second later, rank 0 having come to its exit: it arrives whole. Never
    received: rank 0's MPI_Finalize waits until the deadline,
    says so, and drops it; the job ends well, as under shm."""
    save_send_receive(tmp_path, [256, 128])
    script = tmp_path / "send_ahead.py"
    script.write_text(SEND_AHEAD)
    t0 = time.monotonic()
    proc = start_mpi_job(str(tmp_path), receiver, script=script, hosts_in=tmp_path)
    out, ended = finish(proc, 30)
    assert ended and time.monotonic() - t0 < 20, out
    assert proc.returncode == 0 and "sent" in out, out
    dropped = re.search(rf"rank 0 waited {MPI_DEADLINE_S} s for rank 1 \(its Sends, at "
                        r"MPI_Finalize\): deadline passed \(SHARDLITE_COMM_TIMEOUT\); the "
                        r"messages not received are dropped", out)
    assert bool(dropped) == (receiver == "never"), out
    if receiver != "never":
        took = float(re.search(r"received in ([0-9.]+) s", out).group(1))
        assert took < 1.5, out


FINALIZING = """
import ctypes
import sys
import numpy as np
import shardlite as mslite
rank = mslite.distributed()["rank"]
model = mslite.Model()
model.build_from_file(f"{sys.argv[1]}{rank}.mindir", mslite.ModelType.MINDIR, mslite.Context())
inputs = model.get_inputs()
inputs[0].set_data_from_numpy(np.ones(inputs[0].shape, np.float32))
model.predict(inputs)
mpi = ctypes.CDLL("libmpi.so.40", mode=ctypes.RTLD_GLOBAL)  # what mpi4py's MPI.Finalize() calls
assert mpi.MPI_Finalize() == 0
print("finalized", flush=True)
"""


def test_program_finalizing_mpi_itself(models, tmp_path):
    """A program that calls MPI_Finalize itself (mpi4py's MPI.Finalize(), say) after shardlite
    initialised MPI exits cleanly: shardlite does not finalize a second time at exit."""
    script = tmp_path / "finalizing.py"
    script.write_text(FINALIZING)
    proc = start_mpi_job(models, script=script, deadline_s=60)
    out, ended = finish(proc, 60)
    assert ended and proc.returncode == 0, out
    assert out.count("finalized") == 2 and "MPI_FINALIZE" not in out, out


def test_segment_of_a_rank_0_killed_at_its_rendezvous_is_removed_later(models, tmp_path):
    """mpirun ends a job with SIGKILL and nothing cleans up after it: a rank 0 killed while it
    waits at its rendezvous leaves its segment. The next job of this user to make a segment
    removes it, once the dead job's rendezvous deadline (1 s here) is 5 s past."""
    dead, other = "stale" + uuid.uuid4().hex[:8], "other" + uuid.uuid4().hex[:8]

    def rank0(job):
        env = launcher_free_env(SHARDLITE_RANK=0, SHARDLITE_WORLD_SIZE=2, SHARDLITE_JOB_ID=job,
                                SHARDLITE_COMM_TIMEOUT=1)
        return subprocess.Popen([sys.executable, "-c", ALONE_SCRIPT, models + "0.mindir"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    proc = rank0(dead)
    t0 = time.monotonic()
    while not shm_entries(dead) and proc.poll() is None and time.monotonic() - t0 < 20:
        time.sleep(0.01)
    created = time.monotonic()
    time.sleep(0.3)  # in its rendezvous
    proc.kill()
    proc.wait()
    assert len(shm_entries(dead)) == 1, "rank 0 made no segment"
    time.sleep(max(0.0, created + 1 + 5 + 0.5 - time.monotonic()))
    # and segments whose rank 0 died before writing the header (none yet, or no room for
    # one), unchanged for over 60 s; another version's segment (another magic) stays
    fakes = {"empty": b"", "unwritten": bytes(1 << 16), "other": b"SHLITE99" + bytes(1 << 16)}
    fakes = {kind: ("/dev/shm/shardlite-%s%s-2-0" % (kind, uuid.uuid4().hex[:8]), data)
             for kind, data in fakes.items()}
    for path, data in fakes.values():
        with open(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as f:
            f.write(data)
        os.utime(path, (time.time() - 120, time.time() - 120))
    try:
        proc = rank0(other)  # waits 1 s for its rank 1, then fails and removes its own segment
        out, _ = proc.communicate(timeout=30)
        assert "only 1 arrived within 1 s" in out, out
        assert shm_entries(dead) == [] and shm_entries(other) == []
        assert {kind: os.path.exists(path) for kind, (path, _) in fakes.items()} == \
            {"empty": False, "unwritten": False, "other": True}
    finally:
        for path, _ in fakes.values():
            if os.path.exists(path):
                os.unlink(path)
