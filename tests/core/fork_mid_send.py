"""A parent that forks while one of its sending threads imports a module,
run by test_fork_mid_send.py as its own program (the first send of a
process imports, once): ``python fork_mid_send.py ENDPOINT``.

An audit hook holds any import made on a dunetrace thread for 0.3 s, with
the module's import lock held, and the main thread forks as soon as one
starts: a fork that does not wait for it leaves the module locked in the
child. Each child sends one run and exits 0 once it is delivered, 2 when
its flush timed out (its sending thread stuck), 4 when some were dropped
(its exporter failed on the half-imported module); the program prints one line per child and exits 1 if any failed."""

from __future__ import annotations

import os
import sys
import threading
import time

from dunetrace import Dunetrace

importing = threading.Event()
held: list[str] = []


def hold_imports_on_our_threads(event: str, args: tuple[object, ...]) -> None:
    if event == "import" and threading.current_thread().name.startswith("dunetrace"):
        held.append(str(args[0]))
        importing.set()
        time.sleep(0.3)  # the module's import lock is held meanwhile


def main() -> None:
    dt = Dunetrace(endpoint=sys.argv[1], flush_interval=0.01)
    sys.addaudithook(hold_imports_on_our_threads)
    with dt.run("parent") as run:  # starts the drain thread, whose first send connects
        run.tool_called("lookup", {"q": 1})
    children = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and len(children) < 3:
        importing.wait(max(0.0, deadline - time.monotonic()))
        importing.clear()
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                with dt.run("child") as run:
                    run.tool_called("lookup", {"q": 2})
                code = 2 if not dt.flush(5) else 0 if not dt.stats()["dropped_total"] else 4
            finally:
                os._exit(code)
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(f"child {pid} exited {code}")
        failed += code != 0
    print(f"imports held on our threads: {held}")
    assert dt.flush(10)
    dt.shutdown()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
