"""A warm worker for the workflow's commands: torch and the other heavy libraries are imported
once, and each command runs in a fork of that process instead of a fresh interpreter.

Most of a short job's time would otherwise be process start-up and imports (torch alone takes
seconds). The Snakefile starts a worker when Snakemake executes jobs on this machine
(``onstart``) and exports its address as ``WHITEBOX_WORKER``; ``python -m whitebox`` then hands
its command line, working directory, environment and standard streams to the worker
(``run_remote``) and waits for the exit status. Nothing changes for the command: the fork runs
it with the client's files, cwd and environment, signals sent to the client (SIGTERM from a
time limit, Ctrl-C) reach it, it exits with the same status, and killing the client (SIGKILL)
kills it. Only third-party libraries are preloaded; the library's own code is imported in each
fork, so an edit is always seen. Without a worker, or when it cannot be reached, a command runs
in its own process as before. ``WHITEBOX_NO_WORKER=1`` turns the worker off.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ADDRESS_VARIABLE = "WHITEBOX_WORKER"
# The SLURM job (if any) the worker runs in: a command in another job (a cluster job that
# inherited the variable) runs in its own allocation instead.
SCOPE_VARIABLE = "WHITEBOX_WORKER_SLURM_JOB"
DISABLE_VARIABLE = "WHITEBOX_NO_WORKER"
# Imported before forking: what most commands need and takes long to import.
PRELOAD = ("numpy", "torch", "torch.nn.functional", "torchvision", "kornia", "matplotlib.pyplot",
           "PIL.Image", "jinja2", "jsonschema", "yaml", "tqdm")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
HEADER = struct.Struct("!I")  # length of the JSON request that follows


# -- client ------------------------------------------------------------------------------

def address() -> str | None:
    """The worker this process may hand its command to, or None."""
    found = os.environ.get(ADDRESS_VARIABLE)
    if not found or os.environ.get("SLURM_JOB_ID", "") != os.environ.get(SCOPE_VARIABLE, ""):
        return None
    return found


def _send_message(sock: socket.socket, payload: dict, fds: list[int] = ()) -> None:
    data = json.dumps(payload).encode()
    socket.send_fds(sock, [HEADER.pack(len(data)) + data], list(fds))


def run_remote(where: str, argv: list[str]) -> int | None:
    """Run ``whitebox argv`` in the worker at ``where``; its exit status, or None when no
    worker answers (the caller then runs the command itself)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(where)
        _send_message(sock, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                             "path": sys.path, "executable": sys.executable}, [0, 1, 2])
    except OSError:
        sock.close()
        return None

    def forward(number, _frame):
        with contextlib.suppress(OSError):
            sock.sendall(f"{number}\n".encode())

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        reply = b""
        while not reply.endswith(b"\n"):
            try:
                chunk = sock.recv(64)
            except InterruptedError:
                continue
            if not chunk:
                break
            reply += chunk
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
    if reply == b"other python\n":  # e.g. a job in a conda environment: run it here
        return None
    if not reply.endswith(b"\n"):
        print("whitebox: the worker process ended without reporting the command's exit status",
              file=sys.stderr)
        return 1
    return int(reply)


# -- server ------------------------------------------------------------------------------

def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _address = socket.recv_fds(conn, 1 << 20, 3)
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 20)
        if not more:
            raise ConnectionError("incomplete request")
        data += more
    return json.loads(data[HEADER.size:]), fds


def _run_command(request: dict, fds: list[int]) -> None:
    """In the forked runner: become the client's process, run the command, exit with its status."""
    status = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        for number in FORWARDED:
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))
        sys.argv = ["whitebox", *request["argv"]]
        from whitebox.cli import run_here

        status = run_here(request["argv"])
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - report like the interpreter would, then exit 1
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _supervise(conn: socket.socket) -> None:
    """In a fork per connection: start the runner, forward the client's signals to it, kill it
    when the client goes away, and report its exit status (128+N when a signal N ended it)."""
    request, fds = _receive_request(conn)
    if os.path.realpath(request["executable"]) != os.path.realpath(sys.executable):
        conn.sendall(b"other python\n")  # its libraries may differ from those preloaded here
        os._exit(0)
    runner = os.fork()
    if runner == 0:
        conn.close()
        _run_command(request, fds)
    for fd in fds:
        os.close(fd)
    reader, writer = os.pipe()  # SIGCHLD -> readable, so one select waits for both events
    os.set_blocking(writer, False)
    signal.set_wakeup_fd(writer)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    watched = selectors.DefaultSelector()
    watched.register(conn, selectors.EVENT_READ)
    watched.register(reader, selectors.EVENT_READ)
    pending = b""
    while True:
        done, status = os.waitpid(runner, os.WNOHANG)
        if done:
            break
        for key, _ in watched.select(timeout=1.0):
            if key.fileobj is reader:
                os.read(reader, 512)
                continue
            chunk = conn.recv(64)
            if not chunk:  # the client was killed: so is its command
                with contextlib.suppress(ProcessLookupError):
                    os.kill(runner, signal.SIGKILL)
                watched.unregister(conn)
                continue
            pending += chunk
            *numbers, pending = pending.split(b"\n")
            for number in numbers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(runner, int(number))
    code = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(OSError):
        conn.sendall(f"{code if code >= 0 else 128 - code}\n".encode())
    os._exit(0)


def serve(where: str, parent: int) -> None:
    """Listen at ``where`` until ``parent`` (the Snakemake process) is gone or asks to stop."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(where)  # before the imports: early clients wait in the backlog
    listener.listen(128)
    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are never waited for
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while os.getppid() == parent:
            ready = selectors.DefaultSelector()
            ready.register(listener, selectors.EVENT_READ)
            if not ready.select(timeout=1.0):
                continue
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                try:
                    _supervise(conn)
                finally:
                    os._exit(1)
            conn.close()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(where)
            os.rmdir(os.path.dirname(where))


def start() -> subprocess.Popen | None:
    """Start a worker for this process's jobs and export its address (None when turned off)."""
    if os.environ.get(DISABLE_VARIABLE) == "1" or not hasattr(socket, "send_fds"):
        return None
    where = str(Path(tempfile.mkdtemp(prefix="whitebox-worker-")) / "socket")
    source = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [source, *filter(None, [os.environ.get("PYTHONPATH")])])}
    process = subprocess.Popen([sys.executable, "-m", "whitebox.worker", where, str(os.getpid())],
                               env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    os.environ[ADDRESS_VARIABLE] = where
    os.environ[SCOPE_VARIABLE] = os.environ.get("SLURM_JOB_ID", "")
    return process


def stop(process: subprocess.Popen | None) -> None:
    """Stop a worker ``start`` returned and forget its address."""
    os.environ.pop(ADDRESS_VARIABLE, None)
    os.environ.pop(SCOPE_VARIABLE, None)
    if process is not None and process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
