"""Entry points that stay quiet when their reader goes away (``jacobian-nn verify | head -1``).

When the reader of a pipe exits early, the next write to it raises ``BrokenPipeError``;
unhandled, that ends the command with a traceback and exit code 1 even when every check
passed. :func:`run_main` guards ``sys.stdout`` for the whole command instead: from the
first write that fails on, the rest of the output goes to ``os.devnull``, the command
finishes its work, and its own exit code is returned.
"""

from __future__ import annotations

import os
import sys


class _PipeGuard:
    """``sys.stdout``, except that a closed pipe silently swallows what is written after it closed."""

    def __init__(self, stream):
        self._stream = stream
        self.closed_early = False

    def write(self, text: str) -> int:
        if not self.closed_early:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_early:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed_early = True
        try:  # the interpreter flushes the real stdout at exit: let that write go to devnull, not to the pipe
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not backed by a file descriptor (a test's capture)
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def run_main(main, argv=None) -> int:
    """``main(argv)`` with ``sys.stdout`` guarded against a reader that closes the pipe early; its exit code."""
    guard = _PipeGuard(sys.stdout)
    sys.stdout = guard  # type: ignore[assignment]
    try:
        code = main(argv)
        guard.flush()
        return code
    except BrokenPipeError:  # written past the guard (sys.__stdout__, a binary buffer): still quiet
        guard._reader_gone()
        return 1
    finally:
        sys.stdout = guard._stream
