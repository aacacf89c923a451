"""Fits that hang or work silently, run in the training child process by tests/test_training_limits.py
(a module of its own with nothing heavy to import, so the child starts at once)."""

from __future__ import annotations

import time


def sleeps(job, progress=None):
    """Reports one epoch, then hangs without using CPU (a deadlock, a stopped container)."""
    progress({"epoch": 1, "max_epochs": 2, "train_loss": 1.0})
    time.sleep(120)


def reports_for_ever(job, progress=None):
    """Keeps reporting, never finishes: only the whole fit's time limit stops it."""
    epoch = 0
    while True:
        epoch += 1
        progress({"epoch": epoch, "max_epochs": 10**6, "train_loss": 1.0})
        time.sleep(0.1)


def works_silently(job, progress=None, seconds: float = 6.0):
    """Uses the CPU for `seconds` without reporting (one long native call), then fits for real."""
    from airec.training import fitting

    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return fitting.fit_and_write(job, progress)


def stops(job, progress=None):
    """Reports one epoch, then the process is stopped (SIGSTOP: a frozen container): no CPU, no word."""
    import os
    import signal

    progress({"epoch": 1, "max_epochs": 2, "train_loss": 1.0})
    os.kill(os.getpid(), signal.SIGSTOP)
