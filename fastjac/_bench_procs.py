"""The worker processes of ``fastjac bench``: how :mod:`fastjac.bench` starts them and
talks to them.

* ``_launch`` runs one worker to its end (one by one): a spec file in, a JSON file out.
* ``_Served`` is the parent's end of a worker that serves requests
  (``_bench_worker.py --serve``, the interleaved default): JSON lines over pipes, every
  wait with a timeout, SIGSTOP and SIGCONT around the other frameworks' samples, and an
  end in any state.

Both run :mod:`fastjac._bench_worker` by path, so that a peer's Python needs no fastjac.
"""

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

from fastjac import _bench_worker as W

_LOADER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
# The file every worker runs, by path (peer Pythons need not have fastjac).
WORKER_PATH = os.path.abspath(W.__file__)


def _launch(spec, python, env, timeout):
    """Run one worker in a fresh process; its JSON, or {"failed": reason}."""
    with tempfile.TemporaryDirectory(prefix="fastjac-bench-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        cmd = [python, "-c", _LOADER, WORKER_PATH, spec_path, out_path]
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"failed": f"timed out after {timeout:.0f} s"}
        except OSError as exc:
            return {"failed": f"could not start {python}: {exc}"}
        if proc.returncode != 0 or not os.path.exists(out_path):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {"failed": f"exit status {proc.returncode}: {tail[0][:300]}"}
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


class _WorkerFailed(Exception):
    """A serving worker died, timed out or could not answer."""


# After a sample, with --idle pause (or where SIGSTOP does not exist): seconds to wait
# before the next framework's sample, for the last one's thread pools to fall asleep.
PAUSE_S = 0.2


class _Served:
    """The parent's end of one ``--serve`` worker process: JSON requests in, one reply a
    line out (read by a thread, so that every wait has a timeout); its stderr goes to a
    file, for the reason of a failure. :meth:`hold` stops it (SIGSTOP) while other
    frameworks are sampled, :meth:`release` lets it go on, :meth:`close` ends it in any
    state."""

    def __init__(self, fw, python, env, tmp):
        self.fw, self.python, self.stopped = fw, python, False
        self.err = open(os.path.join(tmp, f"{fw}.stderr"), "w+", encoding="utf-8",
                        errors="replace")
        cmd = [python, "-c", _LOADER, WORKER_PATH, "--serve"]
        try:
            self.proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.err, text=True,
                                         encoding="utf-8", bufsize=1)
        except OSError:
            self.err.close()
            raise
        self.replies = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for line in self.proc.stdout:
                self.replies.put(line)
        except (OSError, ValueError):
            pass
        self.replies.put(None)

    def send(self, request):
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise _WorkerFailed(self._why()) from None

    def receive(self, timeout):
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise _WorkerFailed(f"no answer within {timeout:g} s") from None
        if line is None:
            raise _WorkerFailed(self._why())
        reply = json.loads(line)
        if "failed" in reply:
            raise _WorkerFailed(reply["failed"])
        return reply

    def ask(self, request, timeout):
        self.send(request)
        return self.receive(timeout)

    def _why(self):
        """Why the process ended: its exit status and the last line of its stderr."""
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = "none yet"
        try:
            self.err.flush()
            self.err.seek(0)
            tail = self.err.read().strip().splitlines()[-1:] or ["no output"]
        except (OSError, ValueError):
            tail = ["?"]
        return f"exit status {rc}: {tail[0][:300]}"

    def hold(self, idle):
        """After a request: with ``idle="stop"``, stop the process (SIGSTOP; a pause of
        PAUSE_S where there is none); with ``"pause"``, wait PAUSE_S; ``"none"``: nothing."""
        if idle == "stop" and hasattr(signal, "SIGSTOP"):
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGSTOP)
                self.stopped = True
                self._wait_stopped()
        elif idle in ("stop", "pause"):
            time.sleep(PAUSE_S)

    def _wait_stopped(self, limit=1.0):
        """Wait until SIGSTOP has stopped every thread: each stops only when it next runs,
        which on a busy machine took 4-24 ms, and until then a spinning thread pool still
        competes with the next framework's sample."""
        deadline = time.perf_counter() + limit
        while True:
            try:
                pid, status = os.waitpid(self.proc.pid, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                return
            if pid:
                if not os.WIFSTOPPED(status):  # it ended: keep its status for Popen
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                return
            if time.perf_counter() > deadline:
                return
            time.sleep(0.0002)

    def release(self):
        if self.stopped:
            self.stopped = False
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        """End the process: ask it to quit, kill it after 10 s; a stopped process is let go
        on first (SIGCONT), else it could neither quit nor die of SIGTERM."""
        try:
            self.release()
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.write('{"op": "quit"}\n')
                    self.proc.stdin.flush()
                except (OSError, ValueError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.proc.poll() is None:  # an exception above: never leave it behind
                self.proc.kill()
                self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout, self.err):
                try:
                    f.close()
                except (OSError, ValueError):
                    pass
            self.reader.join(timeout=5)
