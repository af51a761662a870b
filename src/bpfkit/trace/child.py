"""The ``-c CMD`` child: forked at once (so its pid is known to the compiler as ``cpid``) but held
before exec until the probes are attached, so none of its events are missed.

`subprocess.Popen` cannot do this: it returns only once the child has exec'd.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import warnings


class HeldChild:
    """A forked child waiting on a pipe; `release()` lets it exec `argv`."""

    def __init__(self, command: str) -> None:
        argv = shlex.split(command)
        if not argv:
            raise ValueError("-c: empty command")
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: wait for the parent's go, then become the command
            try:
                os.close(wfd)
                os.read(rfd, 1)
                os.close(rfd)
                os.execvp(argv[0], argv)
            except OSError as e:
                sys.stderr.write(f"bpfkit trace: -c {argv[0]}: {e.strerror}\n")
            finally:
                os._exit(127)
        os.close(rfd)
        self.pid = pid
        self._wfd: int | None = wfd
        self.returncode: int | None = None

    def release(self) -> None:
        """Let the child exec (idempotent)."""
        if self._wfd is not None:
            fd, self._wfd = self._wfd, None
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)

    def poll(self) -> int | None:
        """The exit status once the child has exited, else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Stop the child if it still runs, reap it, and close the pipe (a held child never execs)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        if self._wfd is not None:
            os.close(self._wfd)
            self._wfd = None

    def __del__(self) -> None:
        if self.returncode is None and self._wfd is not None:
            warnings.warn(f"HeldChild {self.pid} was never closed", ResourceWarning, stacklevel=1)
