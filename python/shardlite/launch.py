"""`shardlite launch`: runs the N ranks of a job on this host, one process each.

    shardlite launch -n N [--timeout SECONDS] [--no-prefix] [--no-bind] [--] CMD ARGS...

Also available as `python -m shardlite.launch`. Each rank gets SHARDLITE_RANK,
SHARDLITE_WORLD_SIZE, SHARDLITE_LOCAL_RANK and SHARDLITE_JOB_ID (a new id per launch, which
names the job's shared-memory segments), and PYTHONUNBUFFERED=1 unless set, so that a rank's
last lines are not lost when it dies. Unless --no-bind, each rank is bound to its own block of
the launcher's CPUs, whole cores where there are enough (as mpirun binds ranks to cores), when
there are at least as many CPUs as ranks: the scheduler then never stacks two ranks on one core
while another idles. Every rank runs in its own process group (and is killed if
the launcher dies); SIGINT, SIGTERM and SIGHUP sent to the launcher go to every rank's group.
Ctrl-Z (SIGTSTP) stops the ranks and then the launcher, and continuing the launcher continues
them.

When a rank exits with a non-zero status or is killed, the others get a moment to end on their
own (a collective error is then reported by each rank), then SIGTERM, then SIGKILL; the launcher
names the rank and how it ended and exits with its exit code (128 + the signal number when it
was killed). Time the job spends stopped by Ctrl-Z does not count toward these periods. When SIGINT, SIGTERM or SIGHUP stopped the job, the launcher then ends by that
signal itself (so that a shell script running it ends on Ctrl-C). Every wait is bounded but
one: the output of ranks that have ended is passed on in full, however slowly it is read.
Whatever the ranks started ends with them (their process groups are killed at the end, by a
watchdog process that does it however the launcher ends, SIGKILL included), and so do the job's
/dev/shm/shardlite-<job>-* segments that a rank killed during its rendezvous left.
"""

import argparse
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

from ._rank import MAX_TIMEOUT_S

# SL_COMM_MAX_RANKS in src/comm/comm.h
MAX_RANKS = 64
# How often the ranks are checked (seconds).
_POLL_S = 0.02
# After a rank fails, how long its peers may take to end by themselves before SIGTERM: they
# usually notice the failure in the communicator and print their side of it.
_SETTLE_S = 1.0
# SIGTERM (or a forwarded signal) -> SIGKILL.
_GRACE_S = 3.0
# After SIGKILL: how long to wait for the processes to go (a process in uninterruptible sleep
# may never); then the launcher gives up on them.
_REAP_S = 5.0
# After the ranks have ended, how long in all an output thread may wait for input (a child that
# left the ranks' groups may hold the pipe open, writing now and then or never); time spent
# passing output on to a slow reader does not count.
_DRAIN_S = 2.0
# Forwarded to the ranks, but SIGTSTP (_Job.suspend).
_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP)
_PR_SET_PDEATHSIG = 1


def _say(msg):
    print(f"shardlite launch: {msg}", file=sys.stderr, flush=True)


def new_job_id():
    """A job id unique on this host: letters and digits only, so that it appears unchanged in
    the names of the job's shared-memory segments."""
    return f"sl{os.getpid():x}x{secrets.token_hex(6)}"


def describe(returncode):
    """'exited with code 3' or 'was killed by SIGKILL' (returncode as subprocess gives it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


def exit_status(returncode):
    """The launcher's exit status for a rank's ending: its code, or 128 + the signal number."""
    return returncode if returncode >= 0 else 128 - returncode


def rank_env(base, rank, size, job, timeout=None):
    """The environment of one rank: base plus what rank discovery reads."""
    env = dict(base)
    env.update(SHARDLITE_RANK=str(rank), SHARDLITE_WORLD_SIZE=str(size),
               SHARDLITE_LOCAL_RANK=str(rank), SHARDLITE_JOB_ID=job)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if timeout is not None:
        env["SHARDLITE_COMM_TIMEOUT"] = str(timeout)
    return env


def _siblings(cpu):
    """The hardware threads sharing cpu's core (Linux sysfs), or just cpu."""
    path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return {cpu}
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def cpu_blocks(size, cpus=None, siblings=_siblings):
    """The CPUs each of `size` ranks is bound to: the launcher's CPUs (or `cpus`) as whole cores
    (a core's hardware threads stay together, so two ranks never share a core while another
    idles), cut into contiguous blocks; by single CPUs when there are fewer cores than ranks;
    None for every rank when the ranks outnumber the CPUs."""
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    if size > len(cpus):
        return [None] * size
    cores = []  # each a sorted list of allowed CPUs, in order of their first
    seen = set()
    for c in cpus:
        if c not in seen:
            core = sorted(set(siblings(c)) & set(cpus) | {c})
            seen.update(core)
            cores.append(core)
    if size > len(cores):
        cores = [[c] for c in cpus]
    return [{c for core in cores[r * len(cores) // size:(r + 1) * len(cores) // size]
             for c in core} for r in range(size)]


def _segments(job):
    """The glob pattern of the job's shared-memory segments (its id has only letters and
    digits: new_job_id)."""
    return f"/dev/shm/shardlite-{job}-*"


def _preexec(cpus):
    """Returns the function a rank runs before its command: binds it to `cpus` (None: no
    binding) and makes it get SIGKILL if the launcher dies (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    parent = os.getpid()

    def preexec():
        if cpus:
            os.sched_setaffinity(0, cpus)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the launcher died before prctl
                os._exit(1)

    return preexec


class _Pump(threading.Thread):
    """Copies a rank's output to stream line by line, each line prefixed with '[rank] '. Once
    the stream is closed (`| head` has ended), or when there is none (the launcher's own was
    closed), reads on without writing, so that the rank is not blocked on a full pipe."""

    def __init__(self, src, rank, stream, lock):
        super().__init__(daemon=True)
        self.src, self.stream, self.lock = src, stream, lock
        self.prefix = f"[{rank}] ".encode()
        self.idle_since = None  # since when it waits for input (None while it handles a line)
        self.idle_before = 0.0  # seconds it waited for input before that

    def idle(self, now):
        """Seconds it has waited for input in all, up to now."""
        since = self.idle_since
        return self.idle_before + (now - since if since is not None else 0.0)

    def run(self):
        out = getattr(self.stream, "buffer", None)
        broken = self.stream is None
        with self.src:
            while True:
                self.idle_since = time.monotonic()
                line = self.src.readline()
                self.idle_before += time.monotonic() - self.idle_since
                self.idle_since = None
                if not line:
                    return
                if broken:
                    continue
                if not line.endswith(b"\n"):
                    line += b"\n"
                try:
                    with self.lock:
                        if out is not None:
                            out.write(self.prefix + line)
                        else:
                            self.stream.write((self.prefix + line).decode(errors="replace"))
                        self.stream.flush()
                except BrokenPipeError:
                    broken = True


def _drain(pumps):
    """Waits for the output threads after the ranks have ended (and their groups were killed):
    for as long as any passes output on (a slow reader gets everything), until each has waited
    _DRAIN_S in all for input that may never end (a child that left the ranks' groups and
    holds the pipe, silent or writing now and then)."""
    start = time.monotonic()
    before = {t: t.idle(start) for t in pumps}
    while True:
        alive = [t for t in pumps if t.is_alive()]
        now = time.monotonic()
        if all(t.idle(now) - before[t] > _DRAIN_S for t in alive):
            return
        alive[0].join(_POLL_S)


# The watchdog: reads the ranks' process-group ids, one per line; at the end of its input, that
# is when the launcher ends, however it ends (SIGKILL included), SIGKILLs those groups, waits
# (up to 5 s) until they are gone and removes the job's shared-memory segments (argv[1]: their
# glob pattern) that a rank killed during its rendezvous left.
_WATCHDOG = """
import glob, os, signal, sys, time
pgids = [int(line) for line in sys.stdin]
for pgid in pgids:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
deadline = time.monotonic() + 5
for pgid in pgids:
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except OSError:
            break
        time.sleep(0.01)
for path in glob.glob(sys.argv[1]):
    try:
        os.unlink(path)
    except OSError:
        pass
"""


def _watchdog(job):
    """Starts the watchdog, in a session of its own and with no file of the launcher's but its
    input: a rank dies with the launcher (PDEATHSIG), but what the rank started (a wrapper's
    child, a background job) would outlive a launcher killed with SIGKILL, and so would the
    segments of a rank killed during its rendezvous."""
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, _segments(job)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


class _Job:
    """The ranks' processes and what happened to them."""

    def __init__(self, procs):
        self.procs = procs
        self.signals = []  # signals the launcher received (and forwarded)
        self.stopped = set()  # ranks the launcher stopped after another failed
        self.ended_at = {}  # rank -> when the launcher saw it end
        self.suspended_s = 0.0  # how long the job was stopped (Ctrl-Z) in all

    def live(self):
        return [r for r, p in enumerate(self.procs) if p.returncode is None]

    def signal_live(self, sig):
        for r in self.live():
            try:
                os.killpg(self.procs[r].pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def kill_groups(self):
        """SIGKILL to every rank's group, ended or not: sweeps children that a rank left."""
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def on_signal(self, sig, frame):
        if sig == signal.SIGTSTP:
            self.suspend()
            return
        self.signals.append(sig)
        self.signal_live(sig)

    def suspend(self):
        """Ctrl-Z: stops the ranks, then the launcher (SIGTSTP's default action); once the
        launcher is continued (fg, bg, SIGCONT), continues them. The ranks get SIGSTOP: each is
        in a session of its own, away from its parent, so its process group is orphaned, and
        the kernel drops a SIGTSTP that would stop a process there (as POSIX says); a rank may
        also catch or ignore SIGTSTP. A stopped rank is not an ended one: poll() only reports
        ranks that exited or were killed."""
        self.signal_live(signal.SIGSTOP)
        handler = signal.getsignal(signal.SIGTSTP)
        stopped_at = time.monotonic()
        _default_action(signal.SIGTSTP)  # returns once continued (at once if dropped)
        signal.signal(signal.SIGTSTP, handler)
        self.signal_live(signal.SIGCONT)
        self.suspended_s += time.monotonic() - stopped_at


def _default_action(sig):
    """Takes sig's default action on the launcher (SIG_DFL, then sig to itself): ends it, as
    CPython ends on an uncaught KeyboardInterrupt, so that its parent sees it killed by the signal
    that stopped the job, not an exit status (a shell script ends on Ctrl-C only when its child
    died of SIGINT); or, for SIGTSTP, stops it until it is continued."""
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _start(cmd, size, job, prefix, timeout, bind, watchdog):
    """Starts the ranks, telling the watchdog their process groups; returns the _Job and the
    output threads. Ranks already started are killed if a later one cannot start."""
    base = dict(os.environ)
    blocks = cpu_blocks(size) if bind else [None] * size
    procs = []
    try:
        for rank in range(size):
            pipe = subprocess.PIPE if prefix else None
            procs.append(subprocess.Popen(
                cmd, env=rank_env(base, rank, size, job, timeout),
                stdin=None if rank == 0 else subprocess.DEVNULL, stdout=pipe, stderr=pipe,
                start_new_session=True, preexec_fn=_preexec(blocks[rank])))
            watchdog.stdin.write(b"%d\n" % procs[-1].pid)
            watchdog.stdin.flush()
    except BaseException:
        _Job(procs).kill_groups()
        for p in procs:
            _wait(p, _REAP_S)
        raise
    pumps = []
    if prefix:
        lock = threading.Lock()
        for rank, p in enumerate(procs):
            for src, stream in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                t = _Pump(src, rank, stream, lock)
                t.start()
                pumps.append(t)
    return _Job(procs), pumps


def _wait(proc, seconds):
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


def _supervise(job):
    """Waits for the ranks; stops them all when one fails or a signal arrives. Returns the
    first failure as (rank, returncode), or None."""
    failure = None
    term_at = kill_at = give_up_at = None
    suspended_s = 0.0
    while True:
        now = time.monotonic()
        if job.suspended_s != suspended_s:  # time stopped by Ctrl-Z does not count
            term_at, kill_at, give_up_at = (t if t is None else t + job.suspended_s - suspended_s
                                            for t in (term_at, kill_at, give_up_at))
            suspended_s = job.suspended_s
        ended = [r for r in job.live() if job.procs[r].poll() is not None]
        job.ended_at.update((r, now) for r in ended)
        failed = [r for r in ended if job.procs[r].returncode != 0]
        if failed and failure is None:
            # A rank killed by a signal is more likely the cause than one that exited with an
            # error in the same instant (its peers notice the death and fail too).
            first = min(failed, key=lambda r: (job.procs[r].returncode >= 0, r))
            failure = (first, job.procs[first].returncode)
            if job.live() and not job.signals:
                _say(f"rank {first} (pid {job.procs[first].pid}) "
                     f"{describe(failure[1])}; stopping the other ranks")
            term_at = now + _SETTLE_S
        if job.signals and kill_at is None:
            kill_at = now + _GRACE_S
        if not job.live():
            return failure
        if term_at is not None and now >= term_at:
            term_at = None
            job.stopped.update(job.live())
            job.signal_live(signal.SIGTERM)
            kill_at = min(kill_at or now + _GRACE_S, now + _GRACE_S)
        if kill_at is not None and now >= kill_at and give_up_at is None:
            job.kill_groups()
            give_up_at = now + _REAP_S
        if give_up_at is not None and now >= give_up_at:
            for r in job.live():
                _say(f"rank {r} (pid {job.procs[r].pid}) does not end even after SIGKILL; "
                     "giving up on it")
            return failure
        time.sleep(_POLL_S)


def run(cmd, size, prefix=True, timeout=None, bind=True):
    """Runs cmd as `size` ranks of a new job; returns the launcher's exit status: 0 when every
    rank exited with 0, a failed rank's (see exit_status), or 128 + the number of the signal
    (SIGINT, SIGTERM, SIGHUP) that stopped the job."""
    return _run(cmd, size, prefix, timeout, bind)[0]


def _run(cmd, size, prefix, timeout, bind):
    """run(); returns (the exit status, the signal that stopped the job or None)."""
    if not cmd:
        raise ValueError("no command to launch")
    if not 1 <= size <= MAX_RANKS:
        raise ValueError(f"-n {size}: between 1 and {MAX_RANKS} ranks")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"--timeout {timeout}: must be seconds above 0 and at most "
                         f"{MAX_TIMEOUT_S}")
    job_id = new_job_id()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    job = watchdog = None
    try:
        # Signals that arrive while the ranks start are handled once they all run.
        if main_thread:
            pending = []
            for sig in _HANDLED:  # (a signal its parent ignores, as nohup does SIGHUP, stays so)
                if signal.getsignal(sig) != signal.SIG_IGN:
                    previous[sig] = signal.signal(sig, lambda s, f: pending.append(s))
        try:
            watchdog = _watchdog(job_id)
            job, pumps = _start(cmd, size, job_id, prefix, timeout, bind, watchdog)
        except OSError as e:
            _say(f"cannot start {cmd[0]}: {e.strerror or e}")
            return 126 if isinstance(e, PermissionError) else 127, None
        if main_thread:
            for sig in previous:
                signal.signal(sig, job.on_signal)
            for sig in pending:
                job.on_signal(sig, None)
        failure = _supervise(job)
    finally:
        if watchdog is not None:  # ends what the ranks left behind, segments included
            watchdog.stdin.close()
            _wait(watchdog, 2 * _REAP_S)
        for sig, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)
    _drain(pumps)
    if job.signals:
        sig = job.signals[0]
        _say(f"received {signal.Signals(sig).name}: stopped the ranks")
        return 128 + sig, sig
    if failure is not None:
        rank, rc = failure
        others = [f"rank {r} {describe(p.returncode)}" for r, p in enumerate(job.procs)
                  if r != rank and r not in job.stopped and p.returncode not in (None, 0)]
        # a rank that left early (exit 0) may be what the failing one waited for
        others += [f"rank {r} had exited with code 0 before it" for r, p in enumerate(job.procs)
                   if p.returncode == 0 and job.ended_at[r] < job.ended_at[rank]]
        _say(f"rank {rank} {describe(rc)}" + (f" ({'; '.join(others)})" if others else ""))
        return exit_status(rc), None
    return 0, None


def add_arguments(parser):
    """The launcher's options and command, on an argparse parser."""
    parser.add_argument("-n", "--nproc", type=int, required=True, metavar="N",
                        help="number of ranks to start")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="how long a rank may wait for the others in a collective "
                             "(SHARDLITE_COMM_TIMEOUT; default 60)")
    parser.add_argument("--no-prefix", dest="prefix", action="store_false",
                        help="do not prefix each output line with '[rank] '")
    parser.add_argument("--no-bind", dest="bind", action="store_false",
                        help="do not bind each rank to its own block of CPUs")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD ARGS...",
                        help="the command every rank runs (after an optional --)")


def run_args(args):
    """Runs the launcher from parsed add_arguments options (the command line's): when a signal
    stopped the job, ends the process by it (_default_action)."""
    cmd = list(args.cmd)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    status, sig = _run(cmd, args.nproc, args.prefix, args.timeout, args.bind)
    if sig is not None:
        _default_action(sig)
    return status  # (after a signal: only if it is blocked)


def main(argv=None):
    """Entry point of `python -m shardlite.launch`: the same as `shardlite launch` (the same
    messages and exit statuses); returns the exit status."""
    from .cli import main as cli_main

    return cli_main(["launch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
