"""`shardlite launch`: each rank's environment, output prefixes, exit statuses, signal forwarding,
and the seed sample (examples/distributed_main.py, unchanged) on 2 ranks under shardlite's
launcher and under Open MPI's mpirun."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from conftest import IN_CI, REPO
from launching import (SAMPLE, launch, launch_env, proc_stat, rank_lines, row_split_models,
                       sample_values, wait_gone)

PRINT_ENV = ("import os; print(' '.join(os.environ.get(k, '-') for k in ('SHARDLITE_RANK', "
             "'SHARDLITE_WORLD_SIZE', 'SHARDLITE_LOCAL_RANK', 'SHARDLITE_JOB_ID', "
             "'SHARDLITE_COMM_TIMEOUT', 'SHARDLITE_COMM_BACKEND')))")


def env_of_ranks(proc, n):
    return {r: rank_lines(proc.stdout, r)[0].split() for r in range(n)}


def test_environment_of_each_rank():
    proc, _ = launch(["-n", 3, sys.executable, "-c", PRINT_ENV])
    assert proc.returncode == 0, proc.stderr
    ranks = env_of_ranks(proc, 3)
    for r, (rank, size, local, job, timeout, backend) in ranks.items():
        assert (rank, size, local, timeout, backend) == (str(r), "3", str(r), "-", "-")
        assert re.fullmatch(r"[A-Za-z0-9]+", job)
    assert len({v[3] for v in ranks.values()}) == 1
    # a new job id per launch
    again, _ = launch(["-n", 1, sys.executable, "-c", PRINT_ENV])
    assert rank_lines(again.stdout, 0)[0].split()[3] != ranks[0][3]


def test_timeout_option_and_module_entry():
    # the ranks run on this host over shared memory (MPI jobs start with mpirun instead)
    proc, _ = launch(["-n", 2, "--timeout", 7.5, "--",
                      sys.executable, "-c", PRINT_ENV], entry=("-m", "shardlite.launch"))
    assert proc.returncode == 0, proc.stderr
    for values in env_of_ranks(proc, 2).values():
        assert values[4:] == ["7.5", "-"]


@pytest.mark.parametrize("args", [["-n", 0, "true"], ["-n", 1, "--timeout", "inf", "true"]])
def test_module_entry_fails_like_the_command(args):
    """`python -m shardlite.launch` and `shardlite launch` report a bad option alike."""
    command, _ = launch(args)
    module, _ = launch(args, entry=("-m", "shardlite.launch"))
    assert command.returncode == module.returncode == 1
    assert command.stderr == module.stderr
    assert re.fullmatch(r"shardlite: error: (-n 0|--timeout inf): .*\n", module.stderr)


PRINT_CPUS = "import os; print(' '.join(map(str, sorted(os.sched_getaffinity(0)))))"


def test_ranks_bound_to_their_own_cpus():
    import os

    cpus = sorted(os.sched_getaffinity(0))
    for n in (1, 2, len(cpus) + 1):
        proc, _ = launch(["-n", n, sys.executable, "-c", PRINT_CPUS])
        assert proc.returncode == 0, proc.stderr
        got = [[int(c) for c in rank_lines(proc.stdout, r)[0].split()] for r in range(n)]
        if n > len(cpus):  # more ranks than CPUs: none bound
            assert got == [cpus] * n
        else:  # contiguous blocks covering the CPUs once
            assert sorted(c for block in got for c in block) == cpus
            assert max(map(len, got)) - min(map(len, got)) <= 1
    unbound, _ = launch(["-n", 2, "--no-bind", sys.executable, "-c", PRINT_CPUS])
    assert unbound.returncode == 0, unbound.stderr
    for r in range(2):
        assert [int(c) for c in rank_lines(unbound.stdout, r)[0].split()] == cpus


def test_cpu_blocks_keep_cores_together():
    from shardlite.launch import cpu_blocks

    # 8 cores with 2 hardware threads each, numbered as Linux often does: core i = {i, i + 8}
    ht = lambda c: {c % 8, c % 8 + 8}  # noqa: E731
    cpus = range(16)
    assert cpu_blocks(2, cpus, ht) == [{0, 1, 2, 3, 8, 9, 10, 11}, {4, 5, 6, 7, 12, 13, 14, 15}]
    assert cpu_blocks(8, cpus, ht) == [{i, i + 8} for i in range(8)]
    # more ranks than cores: single CPUs; more than CPUs: no binding
    assert cpu_blocks(16, cpus, ht) == [{i} for i in range(16)]
    assert cpu_blocks(17, cpus, ht) == [None] * 17
    # only part of a core allowed; no topology known
    assert cpu_blocks(2, [0, 1, 9], ht) == [{0}, {1, 9}]
    assert cpu_blocks(3, [4, 5, 6], lambda c: {c}) == [{4}, {5}, {6}]


def test_prefixes_and_no_prefix():
    code = "import sys; print('out'); print('err', file=sys.stderr); print('tail', end='')"
    proc, _ = launch(["-n", 2, sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    for r in (0, 1):
        assert rank_lines(proc.stdout, r) == ["out", "tail"]
        assert rank_lines(proc.stderr, r) == ["err"]
    plain, _ = launch(["-n", 2, "--no-prefix", sys.executable, "-c", code])
    assert plain.returncode == 0, plain.stderr
    assert (plain.stdout.count("out"), plain.stdout.count("tail")) == (2, 2), plain.stdout
    assert "[" not in plain.stdout + plain.stderr


def test_slow_reader_gets_all_output():
    """The ranks print more than a pipe holds and end while nobody reads (for longer than the
    launcher waits for idle output threads): every line still arrives, and the job succeeds.
    Then a reader that closes early (`| head`): the ranks are not blocked and nothing is said
    about the broken pipe."""
    code = "for i in range(20000): print(i)"
    cmd = [sys.executable, "-m", "shardlite", "launch", "-n", "2", sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=launch_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for r in (0, 1):
        assert rank_lines(out, r) == [str(i) for i in range(20000)], err
    head = subprocess.run(" ".join(cmd[:-1]) + f" '{code}' | head -1", shell=True,
                          cwd=str(REPO), env=launch_env(), capture_output=True, text=True,
                          timeout=60)
    assert head.stdout in ("[0] 0\n", "[1] 0\n") and head.stderr == "", head.stderr


@pytest.mark.parametrize("how, status, says", [
    ("sys.exit(3)", 3, "exited with code 3"),
    ("os.kill(os.getpid(), signal.SIGSEGV)", 128 + signal.SIGSEGV, "was killed by SIGSEGV"),
])
def test_failing_rank_sets_the_exit_status_and_stops_the_others(how, status, says):
    code = ("import os, signal, sys, time\n"
            "if os.environ['SHARDLITE_RANK'] == '1':\n"
            f"    {how}\n"
            "time.sleep(60)\n")
    proc, wall = launch(["-n", 3, sys.executable, "-c", code])
    assert proc.returncode == status, proc.stderr
    assert wall < 15
    assert proc.stderr.splitlines()[-1] == f"shardlite launch: rank 1 {says}"


def processes_running(marker):
    """The pids whose command line contains marker."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(d))
        except (OSError, ValueError):
            pass
    return pids


def test_launcher_killed_leaves_nothing_running():
    """A rank's own child (a wrapper's, here sh's sleep) does not outlive a launcher killed
    with SIGKILL: the launcher's watchdog ends the ranks' process groups."""
    marker = "%d.%06d" % (300 + os.getpid() % 100, uuid.uuid4().int % 10 ** 6)
    proc = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2", "sh", "-c",
                             f"sleep {marker}; echo never"], cwd=str(REPO), env=launch_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while len(processes_running("sleep\0" + marker)) < 2:
        assert time.monotonic() < deadline, "the ranks' children did not start"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while processes_running("sleep\0" + marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_running("sleep\0" + marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the ranks' children outlived the launcher"


@pytest.mark.parametrize("escape", ["", "setsid "])
def test_leftover_child_ends_with_the_job(escape):
    """A rank that leaves a child printing forever: the job still ends once the rank has, with
    the rank's status. The ranks' groups are killed at the end; a child that left them (setsid)
    is not waited for once it has held the output pipe 2 s without a rank behind it."""
    marker = "tick%d_%06d" % (os.getpid(), uuid.uuid4().int % 10 ** 6)
    loop = f"{escape}sh -c 'while :; do echo {marker}; sleep 0.2; done' & echo done"
    try:
        proc, wall = launch(["-n", 1, "sh", "-c", loop], timeout=30)
    finally:
        for pid in processes_running(marker):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0 and wall < 10, proc.stderr
    assert "done" in rank_lines(proc.stdout, 0)  # (the child's first tick may come first)


def test_launcher_without_stdout():
    """A launcher whose standard output is closed passes nothing on, and the ranks, printing
    more than a pipe holds, still run to their end."""
    code = "for i in range(100000): print(i)"
    proc = subprocess.run([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                           sys.executable, "-c", code], cwd=str(REPO), env=launch_env(),
                          stderr=subprocess.PIPE, text=True, timeout=60,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_rank_that_left_early_is_named():
    """When a rank fails after another exited 0, the launcher's message names the one that
    left: it may be what the failing rank waited for."""
    code = ("import os, sys, time\n"
            "if os.environ['SHARDLITE_RANK'] == '0':\n"
            "    time.sleep(1)\n"
            "    sys.exit(1)\n")
    proc, _ = launch(["-n", 2, sys.executable, "-c", code])
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == ("shardlite launch: rank 0 exited with code 1 (rank 1 "
                                            "had exited with code 0 before it)"), proc.stderr


def test_launcher_killed_at_a_rendezvous_leaves_no_segment(tmp_path):
    """A launcher killed with SIGKILL while its rank 0 waits at the rendezvous for a rank 1 that
    never comes: the watchdog removes the segment rank 0 made."""
    row_split_models(tmp_path, np.ones((8, 3), np.float32))
    code = ("import os, sys, time\n"
            "import shardlite as mslite\n"
            "print('job', os.environ['SHARDLITE_JOB_ID'], flush=True)\n"
            "if os.environ['SHARDLITE_RANK'] == '1':\n"
            "    time.sleep(60)\n"
            "mslite.Model().build_from_file(sys.argv[1], mslite.ModelType.MINDIR)\n")
    proc = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                             sys.executable, "-c", code, str(tmp_path / "Matmul0.mindir")],
                            cwd=str(REPO), env=launch_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    job = proc.stdout.readline().split()[-1]
    pattern = f"shardlite-{job}-"
    deadline = time.monotonic() + 20
    while not [p for p in os.listdir("/dev/shm") if p.startswith(pattern)]:
        assert time.monotonic() < deadline, "rank 0 made no segment"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while [p for p in os.listdir("/dev/shm") if p.startswith(pattern)]:
        assert time.monotonic() < deadline, "the segment outlived the launcher"
        time.sleep(0.05)


def test_success_and_bad_arguments():
    proc, _ = launch(["-n", 2, sys.executable, "-c", "pass"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    missing, _ = launch(["-n", 2, "/nonexistent/program"])
    assert missing.returncode == 127 and "cannot start /nonexistent/program" in missing.stderr
    denied, _ = launch(["-n", 2, os.path.abspath(__file__)])  # not executable
    assert denied.returncode == 126 and "Permission denied" in denied.stderr, denied.stderr
    for bad in (["-n", 0, "true"], ["-n", 2], ["-n", 2, "--timeout", "0", "true"]):
        proc, _ = launch(bad)
        assert proc.returncode != 0 and proc.stderr, bad


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_to_the_launcher_reaches_every_rank(tmp_path, sig):
    """Each forwarded signal reaches every rank; the launcher then says so and ends by that
    signal itself (its parent sees it killed by the signal, not an exit status)."""
    # each rank notes its pid, then waits; on the signal it writes a marker and exits 0
    code = ("import os, signal, sys, time\n"
            f"d = {str(tmp_path)!r}\n"
            "r = os.environ['SHARDLITE_RANK']\n"
            "def on_signal(sig, frame):\n"
            "    open(os.path.join(d, 'got' + r), 'w').close()\n"
            "    sys.exit(0)\n"
            f"signal.signal({int(sig)}, on_signal)\n"
            "open(os.path.join(d, 'pid' + r), 'w').write(str(os.getpid()))\n"
            "time.sleep(60)\n")
    launcher = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                                 sys.executable, "-c", code], cwd=str(REPO), env=launch_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_files = [tmp_path / "pid0", tmp_path / "pid1"]
    deadline = time.monotonic() + 20
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and launcher.poll() is None, launcher.communicate()
        time.sleep(0.05)
    t0 = time.monotonic()
    launcher.send_signal(sig)
    _, err = launcher.communicate(timeout=15)
    assert time.monotonic() - t0 < 5
    assert launcher.returncode == -sig, err
    assert err.splitlines()[-1] == f"shardlite launch: received {sig.name}: stopped the ranks"
    assert (tmp_path / "got0").exists() and (tmp_path / "got1").exists()
    assert not wait_gone([int(p.read_text()) for p in pid_files])


def test_run_from_python_returns_after_a_signal():
    """shardlite.launch.run, called from a program, returns 128 + the signal that stopped the
    job instead of ending its caller (only the command ends by the signal)."""
    code = ("import os, signal, sys, threading\n"
            "from shardlite.launch import run\n"
            "threading.Timer(1, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
            "status = run([sys.executable, '-c', 'import time; time.sleep(30)'], 1)\n"
            "print('status', status)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=launch_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "status 130", proc.stdout


# each rank creates <argv[1]><rank> once it runs, then sleeps 2 s and prints 'done'
STARTED = ("import os, sys, time; open(sys.argv[1] + os.environ['SHARDLITE_RANK'], 'w').close(); "
           "time.sleep(2); print('done')")


def wait_started(prefix, n=2):
    """Waits (up to 20 s) until the n ranks running STARTED with prefix have started."""
    deadline = time.monotonic() + 20
    while not all(os.path.exists(f"{prefix}{r}") for r in range(n)):
        assert time.monotonic() < deadline, "the ranks did not start"
        time.sleep(0.02)


def test_an_ignored_sighup_stays_ignored(tmp_path):
    """Under nohup (SIGHUP ignored), a hang-up neither ends the launcher nor reaches the ranks."""
    ignore = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)  # noqa: E731
    prefix = str(tmp_path / "started")
    launcher = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                                 sys.executable, "-c", STARTED, prefix],
                                cwd=str(REPO), env=launch_env(), preexec_fn=ignore,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_started(prefix)
    launcher.send_signal(signal.SIGHUP)
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, err
    assert sorted(out.splitlines()) == ["[0] done", "[1] done"]


@pytest.mark.parametrize("entry", [["-m", "shardlite", "launch"], ["-m", "shardlite.launch"]])
def test_ctrl_c_ends_a_shell_loop(tmp_path, entry):
    """Ctrl-C (SIGINT to the foreground process group: bash and the launcher) in a bash loop
    that runs the launcher ends the loop: bash ends a script on Ctrl-C only when its child died
    of SIGINT, and the launcher does, after stopping its ranks (from either entry)."""
    launcher = " ".join([sys.executable, *entry])
    prefix = str(tmp_path / "started")
    script = (f"for i in 1 2 3; do echo start $i; {launcher} -n 2 -- {sys.executable} -c "
              f"{shlex.quote(STARTED)} {prefix}$i; echo rc=$?; done")
    bash = subprocess.Popen(["bash", "-c", script], cwd=str(REPO), env=launch_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_started(prefix + "1")
    os.killpg(bash.pid, signal.SIGINT)
    out, err = bash.communicate(timeout=30)
    assert out.split("\n")[:1] == ["start 1"] and "start 2" not in out, out + err
    assert bash.returncode == -signal.SIGINT, out + err
    assert "shardlite launch: received SIGINT: stopped the ranks" in err, err


def test_ctrl_z_stops_the_ranks():
    """SIGTSTP (Ctrl-Z) to the launcher stops every rank (state T, no CPU time used), then the
    launcher itself, as its parent sees; SIGCONT continues them, and the job ends with 0, no
    rank reported as failed."""
    # each rank prints its pid, then counts for 2 s of its own CPU time (stopped time does not
    # count), printing now and then
    code = ("import os, time\n"
            "print('pid', os.getpid())\n"
            "i = 0\n"
            "while time.process_time() < 2:\n"
            "    i += 1\n"
            "    if i % 200000 == 0:\n"
            "        print(i)\n")
    # in a process group of its own in this session: one that is not orphaned, as a shell's
    # job is (the kernel drops a SIGTSTP that would stop a process in an orphaned group)
    launcher = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                                 sys.executable, "-c", code], cwd=str(REPO), env=launch_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=os.setpgrp)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()

    def rank_pids():
        return [int(ln.split()[2]) for ln in list(lines) if ln.split()[1] == "pid"]

    def states():  # '-': gone
        return [(proc_stat(p) or ["-"])[0] for p in pids]

    try:
        deadline = time.monotonic() + 20
        while len(rank_pids()) < 2 or len(lines) < 3:  # both pids and a count: they run
            assert time.monotonic() < deadline and launcher.poll() is None, lines
            time.sleep(0.05)
        pids = rank_pids()
        launcher.send_signal(signal.SIGTSTP)
        _, status = os.waitpid(launcher.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTSTP
        deadline = time.monotonic() + 5
        while states() != ["T", "T"]:
            assert time.monotonic() < deadline, states()
            time.sleep(0.02)
        cpu = [proc_stat(p)[11:13] for p in pids]
        time.sleep(0.5)
        assert [proc_stat(p)[11:13] for p in pids] == cpu, "a stopped rank used CPU time"
        shown = len(lines)
        launcher.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 5
        while "T" in states() or len(lines) == shown:
            assert time.monotonic() < deadline, states()
            time.sleep(0.02)
        launcher.wait(30)
    finally:
        launcher.kill()
    reader.join(5)
    err = launcher.stderr.read()
    assert launcher.returncode == 0 and err == "", err


def stopped_for_4_s(args, env, ready):
    """Runs `shardlite launch -n 2 python ARGS...` (in a process group of its own in this
    session: not orphaned, as a shell's job is not), stops it with SIGTSTP (Ctrl-Z) once
    ready(its output lines) holds, continues it 4 s later and waits for its end; returns (its
    output lines, its stderr, its exit status)."""
    launcher = subprocess.Popen([sys.executable, "-m", "shardlite", "launch", "-n", "2",
                                 sys.executable, *args], cwd=str(REPO), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=os.setpgrp)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not ready(list(lines)):
            assert time.monotonic() < deadline and launcher.poll() is None, lines
            time.sleep(0.01)
        launcher.send_signal(signal.SIGTSTP)
        _, status = os.waitpid(launcher.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        time.sleep(4)
        launcher.send_signal(signal.SIGCONT)
        launcher.wait(30)
    finally:
        launcher.kill()
    reader.join(5)
    return lines, launcher.stderr.read(), launcher.returncode


def test_a_stop_does_not_count_against_the_grace_period():
    """Rank 0 fails; the launcher sends SIGTERM to rank 1, whose handler takes 1 s of CPU time to
    clean up (its 3 s grace period allows that). Ctrl-Z stops the job for 4 s right then:
    continued, rank 1 still has the rest of its grace period, and cleans up, instead of being
    killed at once."""
    code = ("import os, signal, sys, time\n"
            "def term(*_):\n"
            "    print('term', flush=True)\n"
            "    t = time.process_time()\n"
            "    while time.process_time() < t + 1:\n"
            "        pass\n"
            "    print('cleaned', flush=True)\n"
            "    sys.exit(3)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "rank = int(os.environ['SHARDLITE_RANK'])\n"
            "print('ready', flush=True)\n"
            "if rank == 0:\n"
            "    time.sleep(0.5)\n"
            "    sys.exit(1)\n"
            "while True:\n"
            "    time.sleep(0.01)\n")
    lines, err, status = stopped_for_4_s(["-c", code], launch_env(),
                                         lambda lines: any("term" in ln for ln in lines))
    assert any("cleaned" in ln for ln in lines), (lines, err)
    assert status == 1 and "rank 0 exited with code 1" in err, err


# ---- the seed sample on 2 ranks ----

W = np.random.default_rng(11).uniform(-1, 1, (8, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def sample_models(mslite, tmp_path_factory):
    """Matmul0/Matmul1.mindir: rank r holds rows 4r..4r+3 of W and AllReduces x_r @ W_r, so with
    the sample's inputs of ones each rank prints ones([2, 8]) @ W."""
    return row_split_models(tmp_path_factory.mktemp("sample"), W)


def check_sample_output(text, prefixed):
    want = (np.ones((2, 8), np.float32) @ W).ravel()[:10]
    if prefixed:
        outputs = [rank_lines(text, r) for r in (0, 1)]
    else:  # mpirun's output: both ranks' lines, interleaved; the ranks print the same
        lines = [ln for ln in text.splitlines() if ln.strip()]
        names = [ln for ln in lines if ln.startswith("tensor's name")]
        data = [ln for ln in lines if ln.startswith("output data is:")]
        assert len(names) == len(data) == 2 == len(lines) / 2, text
        outputs = [list(pair) for pair in zip(names, data)]
    for lines in outputs:
        assert re.fullmatch(r"tensor's name is:\S+ data size is:40 tensor elements num is:10",
                            lines[0]), lines
        np.testing.assert_allclose(sample_values(lines), want, rtol=1e-5, atol=1e-5)


def test_seed_sample_under_shardlite_launch(sample_models):
    proc, _ = launch(["-n", 2, sys.executable, SAMPLE, f"--model_path={sample_models}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_sample_output(proc.stdout, prefixed=True)


def test_seed_sample_with_its_gpu_target(sample_models, tmp_path):
    """The sample with the reference's own target, ["gpu"] (only the import changed): the
    ranks run on the CPU, each warning that it does."""
    script = tmp_path / "gpu_main.py"
    text = SAMPLE.read_text()
    assert 'context.target = ["cpu"]' in text
    script.write_text(text.replace('context.target = ["cpu"]', 'context.target = ["gpu"]'))
    proc, _ = launch(["-n", 2, sys.executable, script, f"--model_path={sample_models}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_sample_output(proc.stdout, prefixed=True)
    for r in range(2):
        assert any("RuntimeWarning: target 'gpu' needs a CUDA build" in ln and
                   "runs on the CPU" in ln for ln in rank_lines(proc.stderr, r)), proc.stderr


def test_seed_sample_under_mpirun(sample_models):
    mpirun = shutil.which("mpirun")
    if not mpirun:
        if IN_CI:
            pytest.fail("mpirun is missing (CI=true)")
        pytest.skip("mpirun is missing")
    # each rank's output reaches mpirun in one piece (block-buffered until exit)
    env = launch_env()
    env.pop("PYTHONUNBUFFERED", None)
    proc = subprocess.run([mpirun, "--allow-run-as-root", "--oversubscribe", "-n", "2",
                           sys.executable, str(SAMPLE), f"--model_path={sample_models}"],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_sample_output(proc.stdout, prefixed=False)


def test_distributed_demo(tmp_path):
    """`make demo`'s distributed story (split, launch, check against the unsplit model and
    numpy) succeeds, and the commands it prints run again on the models it leaves."""
    demo = subprocess.run([sys.executable, str(REPO / "examples" / "demo_distributed.py"),
                           str(tmp_path / "demo")], cwd=str(tmp_path), env=launch_env(),
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stdout.splitlines()[-1].startswith("OK: both ranks' results equal")
    [again] = [ln[2:] for ln in demo.stdout.splitlines() if ln.startswith("$ ") and " launch " in ln]
    rerun = subprocess.run(again.split(), cwd=str(tmp_path), env=launch_env(),
                           capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert rank_lines(rerun.stdout, 1) == rank_lines(demo.stdout, 1) != []
    # a folder of the user's that holds something is refused, not emptied
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("kept")
    refused = subprocess.run([sys.executable, str(REPO / "examples" / "demo_distributed.py"),
                              str(tmp_path / "mine")], env=launch_env(), capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "is not empty" in refused.stdout
    assert (tmp_path / "mine" / "keep.txt").read_text() == "kept"


# ---- explicit ranks: a [distributed] config section, or an Ascend rank table ----

EXPLICIT = """
import json, sys
import numpy as np
import shardlite as mslite
stem, rank, how, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = mslite.Context()
context.cpu.thread_num = 1
if how == "section":
    config = {"distributed": {"rank": str(rank), "size": "2", "job_id": arg}}
else:
    context.ascend.rank_id = rank
    config = {"ascend_context": {"rank_table_file": arg}}
model = mslite.Model()
model.build_from_file(f"{stem}{rank}.mindir", mslite.ModelType.MINDIR, context,
                      config_dict=config)
inputs = model.get_inputs()
inputs[0].set_data_from_numpy(np.ones(inputs[0].shape, np.float32))
out = model.predict(inputs)[0].get_data_to_numpy()
print(json.dumps({"info": mslite.distributed(), "out": out.ravel().tolist()}))
"""


def run_explicit(stem, how, arg, ranks=(0, 1)):
    """Starts the ranks by hand (no launcher, no mpirun variables), each configured by `how`;
    returns their (returncode, stdout, stderr)."""
    procs = [subprocess.Popen([sys.executable, "-c", EXPLICIT, stem, str(r), how, arg],
                              env=launch_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in ranks]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, json.loads(out) if p.returncode == 0 else out, err))
    return results


def explicit_arg(tmp_path, how):
    """run_explicit's argument for `how`: a fresh job id, or a 2-rank table written in
    tmp_path."""
    if how == "section":
        return "explicit" + uuid.uuid4().hex[:8]
    devices = [{"device_id": str(r), "rank_id": str(r)} for r in range(2)]
    (tmp_path / "rank_table.json").write_text(json.dumps(
        {"server_list": [{"server_id": "127.0.0.1", "device": devices}]}))
    return str(tmp_path / "rank_table.json")


@pytest.mark.parametrize("how", ["section", "rank table"])
def test_explicit_ranks(sample_models, tmp_path, how):
    """Two processes started by hand, told their ranks by a [distributed] section or by an
    Ascend rank table plus context.ascend.rank_id: both compute ones @ W, and report where
    their rank came from."""
    stem = str(sample_models)[:-len(".mindir")]
    arg = explicit_arg(tmp_path, how)
    want = (np.ones((2, 8), np.float32) @ W).ravel()
    results = run_explicit(stem, "table" if how == "rank table" else how, arg)
    jobs = set()
    for r, (rc, res, err) in enumerate(results):
        assert rc == 0, err
        info = res["info"]
        assert (info["rank"], info["size"], info["source"], info["backend"]) == \
            (r, 2, "config", "shm"), info
        jobs.add(info["job"])
        np.testing.assert_allclose(res["out"], want, rtol=1e-5)
    assert len(jobs) == 1 and (how == "rank table" or jobs == {arg}), jobs


@pytest.mark.parametrize("how", ["section", "rank table"])
def test_explicit_rank_named_for_missing_model(tmp_path, how):
    """A rank whose model file is missing names the rank its configuration gives it (there are
    no launcher variables to go by)."""
    stem = str(tmp_path / "absent")
    arg = explicit_arg(tmp_path, how)
    [(rc, out, err)] = run_explicit(stem, "table" if how == "rank table" else how, arg,
                                    ranks=(1,))
    assert rc != 0
    assert "model_path does not exist! (%r, on rank 1 of 2)" % (stem + "1.mindir") in err, err


RUNNER_MISSING = """
import sys
import shardlite as mslite
context = mslite.Context()
context.parallel.config_info = {"distributed": {"rank": "1", "size": "2", "job_id": sys.argv[2]}}
mslite.ModelParallelRunner().build_from_file(sys.argv[1], context)
"""


def test_runner_names_the_configured_rank_for_a_missing_model(tmp_path):
    """ModelParallelRunner too: its configuration (context.parallel.config_info) gives the rank
    that the missing-model error names."""
    path = str(tmp_path / "absent1.mindir")
    proc = subprocess.run([sys.executable, "-c", RUNNER_MISSING, path, explicit_arg(tmp_path,
                                                                                     "section")],
                          env=launch_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "model_path does not exist! (%r, on rank 1 of 2)" % path in proc.stderr, proc.stderr


@pytest.mark.parametrize("table", ["[1, 2]", '{"server_list": [{"device": 3}]}',
                                   '{"server_list": []}', "not json"])
def test_malformed_rank_table(sample_models, tmp_path, table):
    """A malformed rank table fails the build with the library's RuntimeError, naming the
    problem, not with whatever Python raises on the wrong structure."""
    (tmp_path / "t.json").write_text(table)
    stem = str(sample_models)[:-len(".mindir")]
    [(rc, out, err)] = run_explicit(stem, "table", str(tmp_path / "t.json"), ranks=(0,))
    assert rc != 0
    assert re.search(r"RuntimeError: build_from_file failed! Error is distributed "
                     r"configuration: .*(rank table|Expecting value)", err), err


STOPPED_WAIT = """
import sys, time
import numpy as np
import shardlite as mslite
stem, rank = sys.argv[1][:-len(".mindir")], mslite.distributed()["rank"]
model = mslite.Model()
model.build_from_file(f"{stem}{rank}.mindir", mslite.ModelType.MINDIR, mslite.Context())
inputs = model.get_inputs()
inputs[0].set_data_from_numpy(np.ones(inputs[0].shape, np.float32))
print("built", flush=True)
while rank == 1 and time.process_time() < 1.5:  # rank 0 waits for it in the AllReduce
    pass
print("out", model.predict(inputs)[0].get_data_to_numpy().ravel().tolist(), flush=True)
"""


def test_a_stop_does_not_count_against_the_deadline(sample_models):
    """Ctrl-Z stops the job for 4 s while rank 0 waits in its AllReduce for rank 1 (busy for
    1.5 s of CPU time), with a 3 s deadline: continued, the job ends well, the stop not counted."""
    lines, err, status = stopped_for_4_s(["-c", STOPPED_WAIT, str(sample_models)],
                                         launch_env(SHARDLITE_COMM_TIMEOUT=3),
                                         lambda lines: sum("built" in ln for ln in lines) == 2)
    assert status == 0, err
    want = (np.ones((2, 8), np.float32) @ W).ravel()
    outs = [ln for ln in lines if " out " in ln]
    assert len(outs) == 2, lines
    for ln in outs:
        np.testing.assert_allclose(json.loads(ln.split(" out ", 1)[1]), want, rtol=1e-5)
