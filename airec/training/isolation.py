"""Run a fit in a child process, so that a native crash or an out-of-memory kill fails the run, not the
web worker that started it.

The child comes from a fork server that has imported the ML core once (later fits start in
milliseconds) and holds no database connection, lock or web thread to inherit. Progress events come
back over a pipe while the fit runs; the result or the error comes back at the end. A child that dies
without answering (SIGSEGV in BLAS, SIGKILL from the OOM killer) raises `FitCrashed`, naming the signal.

A child that hangs is killed too (`FitLimits`): past a wall-clock limit for the whole fit, or when it
has sent nothing for the stall limit. Besides its progress events the child sends a heartbeat while
its CPU time advances, so one long native call (a LAPACK solve that reports nothing for minutes) is
progress, while a deadlock, a stopped process or a swap storm (no CPU) is a stall.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

#: Imported once by the fork server, so each fit's child starts with the ML core loaded.
PRELOAD = ["airec.training.fitting"]

_context: multiprocessing.context.BaseContext | None = None

SIGNAL_HINTS = {
    signal.SIGKILL: "killed, most often by the kernel's out-of-memory killer: lower the catalogue or "
    "AIREC_TRAIN_MAX_ITEMS, or give the machine more memory",
    signal.SIGSEGV: "a native library (BLAS, torch) crashed",
    signal.SIGBUS: "a native library crashed (bus error; is the disk full?)",
    signal.SIGABRT: "a native library aborted",
}


class FitCrashed(RuntimeError):
    """The child process running a fit died without answering."""


class FitFailed(RuntimeError):
    """The fit raised in the child; `kind` is the exception's class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FitStalled(FitCrashed):
    """The child sent nothing (no event, no heartbeat) for `idle` seconds, past the `limit`."""

    def __init__(self, idle: float, limit: float) -> None:
        super().__init__(f"the training process sent no progress for {idle:.0f} s (limit {limit:g} s)")
        self.idle, self.limit = idle, limit


class FitTimedOut(FitCrashed):
    """The fit ran `elapsed` seconds, past the wall-clock `limit` of a whole fit."""

    def __init__(self, elapsed: float, limit: float) -> None:
        super().__init__(f"the fit ran for {elapsed:.0f} s (limit {limit:g} s)")
        self.elapsed, self.limit = elapsed, limit


#: The child's heartbeat interval while its CPU time advances (shorter when the stall limit is short).
HEARTBEAT_SECONDS = 30.0
#: CPU time the child must have used per heartbeat interval (as a share of it) to count as working:
#: the heartbeat's own wake-up costs some microseconds, a working fit a whole core, and a niced fit
#: starved by busy web workers still gets far more than this.
MIN_CPU_SHARE = 0.002


@dataclass(frozen=True)
class FitLimits:
    """When a fit counts as hung: `timeout` seconds in all, or `stall` seconds without a word."""

    timeout: float | None = None
    stall: float | None = None

    @property
    def heartbeat(self) -> float:
        """The child beats at least four times per stall limit, so a working fit never stalls."""
        return min(HEARTBEAT_SECONDS, self.stall / 4) if self.stall else HEARTBEAT_SECONDS

    @property
    def poll(self) -> float:
        """How often the parent checks the limits (a second, or finer for short limits in tests)."""
        return max(0.05, min([1.0, *(limit / 4 for limit in (self.timeout, self.stall) if limit)]))


def _mp() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def run_in_child(
    target: Callable[..., Any],
    job: Any,
    *,
    threads: int = 1,
    nice: int = 0,
    on_progress: Callable[[dict], None] | None = None,
    refused: tuple[type[Exception], ...] = (),
    should_stop: Callable[[], bool] | None = None,
    log_config: tuple[str, bool] = ("INFO", True),
    limits: FitLimits = FitLimits(),
) -> Any:
    """`target(job, progress=send)` in a child process; returns what it returns.

    Exceptions of the types in `refused` are raised again here as that type (with the message);
    any other exception becomes `FitFailed`. A dead child raises `FitCrashed`. `should_stop`, polled
    at every message and at least once a second, kills the child when it turns true (raises
    `FitCrashed` then); so do the `limits` (raising `FitTimedOut` or `FitStalled`). The child logs to
    stdout with `log_config` (level, JSON lines).
    """
    ctx = _mp()
    parent_end, child_end = ctx.Pipe(duplex=False)
    lifeline_end, parent_lifeline = ctx.Pipe(duplex=False)  # only ever closed, by our exit or below
    process = ctx.Process(
        target=_child_main,
        args=(target, job, child_end, lifeline_end, threads, nice, refused, log_config, limits.heartbeat),
        name="airec-fit",
        daemon=True,
    )
    process.start()
    child_end.close()
    lifeline_end.close()
    try:
        return _relay(process, parent_end, on_progress, refused, should_stop, limits)
    finally:
        parent_end.close()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=10)
        parent_lifeline.close()


def _relay(process, conn: Connection, on_progress, refused, should_stop, limits: FitLimits) -> Any:
    """Forward progress until the child answers or dies; kill it when it is stopped or hung."""
    started = heard = time.monotonic()
    while True:
        if should_stop is not None and should_stop():
            _kill(process)
            raise FitCrashed("the training process was stopped: this run no longer holds the training lease")
        hung = _overrun(limits, started, heard)
        if hung is not None:
            _kill(process)
            raise hung
        if conn.poll(limits.poll):
            try:
                kind, payload = conn.recv()
            except EOFError:  # the child closed its end without answering: it died
                break
            heard = time.monotonic()
            if kind == "alive":
                continue
            if kind == "progress":
                if on_progress:
                    on_progress(payload)
                continue
            if kind == "result":
                return payload
            name, message = payload
            for cls in refused:
                if cls.__name__ == name:
                    raise cls(message)
            raise FitFailed(name, message)
        if not process.is_alive():
            break
    process.join(timeout=10)
    raise FitCrashed(describe_exit(process.exitcode))


def _overrun(limits: FitLimits, started: float, heard: float) -> FitCrashed | None:
    """The limit a fit has passed, as the error to raise, or None."""
    now = time.monotonic()
    if limits.timeout is not None and now - started > limits.timeout:
        return FitTimedOut(now - started, limits.timeout)
    if limits.stall is not None and now - heard > limits.stall:
        return FitStalled(now - heard, limits.stall)
    return None


def _kill(process) -> None:
    process.kill()
    process.join(timeout=10)


def describe_exit(exitcode: int | None) -> str:
    """'the training process was killed by SIGSEGV (a native library ... crashed)'."""
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode)
        hint = SIGNAL_HINTS.get(sig)
        return f"the training process was killed by {sig.name}" + (f" ({hint})" if hint else "")
    return f"the training process exited with code {exitcode} without a result"


def _die_with_parent(lifeline: Connection) -> None:
    """Kill this child as soon as the process that asked for the fit is gone (its end of the lifeline
    closes), so a killed web worker leaves no orphan fit behind, training on or writing a model."""

    def watch() -> None:
        try:
            lifeline.recv()
        except (EOFError, OSError):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="airec-fit-lifeline", daemon=True).start()


def _beat_while_working(send: Callable[[tuple], None], every: float) -> None:
    """Send a heartbeat every `every` seconds in which this process used CPU time: a fit inside one
    long native call is working; a deadlocked, stopped or swapping one is not."""

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def beat() -> None:
        last = cpu()
        while True:
            time.sleep(every)
            now = cpu()
            if now - last >= every * MIN_CPU_SHARE:
                try:
                    send(("alive", now))
                except (OSError, ValueError):  # the pipe closed: the fit has answered
                    return
            last = now

    threading.Thread(target=beat, name="airec-fit-heartbeat", daemon=True).start()


def _child_main(
    target, job, conn: Connection, lifeline: Connection, threads: int, nice: int, refused, log_config, beat
) -> None:
    """In the child: lower priority, hold every thread pool to `threads`, run, send the answer."""
    _die_with_parent(lifeline)
    from airec.logs import configure_logging

    configure_logging(*log_config)
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:
            pass
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(max(1, threads))

    sending = threading.Lock()  # the heartbeat thread and the fit share the pipe

    def send_message(message: tuple) -> None:
        with sending:
            conn.send(message)

    def send(event: dict) -> None:
        send_message(("progress", event))

    _beat_while_working(send_message, beat)

    try:
        with threadpool_limits(limits=max(1, threads)):
            result = target(job, progress=send)
        send_message(("result", result))
    except Exception as exc:  # every error goes back to the parent, which records it on the run
        if not isinstance(exc, refused):
            log.error("training failed in its child process:\n%s", traceback.format_exc())
        send_message(("error", (type(exc).__name__, str(exc))))
    finally:
        with sending:
            conn.close()
