"""Each fit runs in a child process: a native crash or an out-of-memory kill fails the run, and the
process that started it keeps serving. The child holds BLAS and torch to AIREC_TRAIN_THREADS."""

from __future__ import annotations

import os
import signal

import pytest

from airec.training import fitting, isolation
from tests.synthetic import ingest, planted, recommend, train, without_id


def die_by(signum: int):
    def fit(job, progress=None):  # runs in the child
        progress({"epoch": 1, "max_epochs": 2, "train_loss": 1.0})
        os.kill(os.getpid(), signum)

    return fit


def crash_by_segfault(job, progress=None):
    return die_by(signal.SIGSEGV)(job, progress)


def crash_by_oom_kill(job, progress=None):
    return die_by(signal.SIGKILL)(job, progress)


def thread_limits(job, progress=None):
    import torch
    from threadpoolctl import threadpool_info

    return {
        "blas": sorted({pool["num_threads"] for pool in threadpool_info()}),
        "torch": torch.get_num_threads(),
        "pid": os.getpid(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
    }


def fail_plainly(job, progress=None):
    raise RuntimeError("a bug in the fit")


@pytest.mark.parametrize(
    ("target", "words"),
    [(crash_by_segfault, "killed by SIGSEGV (a native library"), (crash_by_oom_kill, "killed by SIGKILL")],
)
def test_a_fit_that_dies_fails_its_run_and_the_server_keeps_answering(client, monkeypatch, target, words):
    ingest(client, planted(units=60)[0])
    train(client, {"algorithm": "itemknn"})
    served = without_id(recommend(client, ["g0-i0", "g0-i1"], k=3))

    monkeypatch.setattr(fitting, "fit_and_write", target)
    run = train(client, {"algorithm": "itemknn"}, expect="failed")
    assert words in run["error"]
    assert run["history"] and run["history"][0]["epoch"] == 1  # progress from the child still arrived

    assert client.get("/healthz").status_code == 200
    assert (
        without_id(recommend(client, ["g0-i0", "g0-i1"], k=3)) == served
    )  # the previous model is still served
    monkeypatch.undo()
    assert train(client, {"algorithm": "itemknn"})["status"] == "succeeded"  # and training works again


def test_an_exception_in_the_child_is_the_runs_error(client, monkeypatch):
    ingest(client, planted(units=60)[0])
    monkeypatch.setattr(fitting, "fit_and_write", fail_plainly)
    run = train(client, {"algorithm": "itemknn"}, expect="failed")
    assert run["error"] == "RuntimeError: a bug in the fit"


@pytest.mark.parametrize("threads", [1, 2])
def test_the_child_is_niced_and_holds_blas_and_torch_to_the_training_threads(threads):
    """Training must not starve serving: the fit's process is niced, its thread pools held to
    AIREC_TRAIN_THREADS (two OpenBLAS threads segfaulted on a 16k-item Cholesky), and this one untouched."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    limits = isolation.run_in_child(thread_limits, None, threads=threads, nice=7)
    assert limits["pid"] != os.getpid()
    assert limits["blas"] == [threads] and limits["torch"] == threads
    assert limits["nice"] >= min(before + 7, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


def test_describe_exit_names_the_signal():
    assert isolation.describe_exit(-signal.SIGSEGV).startswith("the training process was killed by SIGSEGV")
    assert "out-of-memory" in isolation.describe_exit(-signal.SIGKILL)
    assert isolation.describe_exit(3) == "the training process exited with code 3 without a result"
