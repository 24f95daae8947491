"""An agent that fans out over multiprocessing, run by test_processes.py as
its own program: ``python mp_agent.py START_METHOD SHAPE`` with
``DT_ENDPOINT`` set. Every task is one run of three events."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import sys
import threading
import time

from dunetrace import Dunetrace

# exit_timeout 10: a spawn child's first send imports httpx's transport
# stack, which on a loaded test machine can take longer than the default 2 s.
dt = Dunetrace(
    endpoint=os.environ["DT_ENDPOINT"], flush_interval=float(os.environ.get("DT_FLUSH", "0.2")), exit_timeout=10.0
)


#: True once this process dumps its stacks on SIGUSR1 (fork children
#: inherit it from main()).
_dumps_on_sigusr1 = False


def task(i: int) -> int:
    global _dumps_on_sigusr1
    if not _dumps_on_sigusr1:  # a spawn or forkserver child: for the watchdog
        _dumps_on_sigusr1 = True
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    with dt.run("worker", user_input=i) as run:
        run.tool_called("lookup", {"i": i})
    return i


def task_then_wait(i: int) -> None:
    task(i)
    time.sleep(60)  # killed with SIGTERM while waiting


def stuck_in_a_run(i: int) -> None:
    with dt.run("stuck") as run:
        run.tool_called("slow")
        time.sleep(60)  # terminated here, mid-run


def own_handler_then_task(i: int) -> None:
    # A target that installs its own SIGTERM handler: it stays the one called.
    def on_term(signum: int, frame: object) -> None:
        with dt.run("handler-ran"):
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    task_then_wait(i)


def inherited_handler(signum: int, frame: object) -> None:
    # Installed by the parent before the children start: fork children
    # inherit it, and it is still the one that decides how they end.
    with dt.run("inherited-handler-ran"):
        pass
    sys.exit(7)


def watchdog(after: float) -> None:
    """Should the program hang (test_processes gives it 120 s), say where
    before it is killed: every child still alive dumps its threads' stacks
    (faulthandler on SIGUSR1, inherited by fork children and registered in
    the others by ``task``), then this process dumps its own and exits 3."""

    def bark() -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGUSR1)
        time.sleep(2)
        sys.stderr.write(f"mp_agent: still running after {after:.0f} s; the parent's threads:\n")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

    timer = threading.Timer(after, bark)
    timer.daemon = True
    timer.start()


def main() -> None:
    method, shape = sys.argv[1], sys.argv[2]
    global _dumps_on_sigusr1
    _dumps_on_sigusr1 = True
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    watchdog(float(os.environ.get("DT_WATCHDOG", "100")))
    ctx = multiprocessing.get_context(method)
    if shape == "pool-with":  # __exit__ terminates the workers with SIGTERM
        with ctx.Pool(4) as pool:
            assert pool.map(task, range(400)) == list(range(400))
    elif shape == "pool-close":  # workers leave their loop and return
        pool = ctx.Pool(4)
        assert pool.map(task, range(400)) == list(range(400))
        pool.close()
        pool.join()
    elif shape == "process":
        procs = [ctx.Process(target=task, args=(i,)) for i in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        assert [p.exitcode for p in procs] == [0] * 8
    elif shape == "terminate":  # SIGTERM between tasks; the exit code stays -SIGTERM
        procs = [ctx.Process(target=task_then_wait, args=(i,)) for i in range(4)]
        procs.append(ctx.Process(target=own_handler_then_task, args=(4,)))
        procs.append(ctx.Process(target=stuck_in_a_run, args=(5,)))
        for p in procs:
            p.start()
        time.sleep(float(os.environ.get("DT_SETTLE", "3")))
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(30)
        expected = [-signal.SIGTERM] * 4 + [0, -signal.SIGTERM]
        assert [p.exitcode for p in procs] == expected, [p.exitcode for p in procs]
    elif shape == "inherited":  # a SIGTERM handler the fork children inherit
        signal.signal(signal.SIGTERM, inherited_handler)
        procs = [ctx.Process(target=task_then_wait, args=(i,)) for i in range(3)]
        for p in procs:
            p.start()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(float(os.environ.get("DT_SETTLE", "3")))
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [7] * 3, [p.exitcode for p in procs]
    dt.shutdown(5)


if __name__ == "__main__":
    main()
