"""The tables `airec bench scale` prints: import and fit figures per size, and seconds per stage of each
run (where a run's time goes, and how each stage grows from one size to the next)."""

from __future__ import annotations


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def print_tables(results: list[dict]) -> None:
    print(
        f"{'size':<7}{'users':>9}{'items':>8}{'interactions':>14}{'import_s':>10}{'rows/s':>10}{'db_MB':>9}"
    )
    for r in results:
        imp = r.get("import") or {}
        seconds = imp.get("seconds", float("nan"))
        rate = r["interactions"] / seconds if imp.get("seconds") else float("nan")
        print(
            f"{r['size']:<7}{r['users']:>9}{r['items']:>8}{r['interactions']:>14}"
            f"{seconds:>10.1f}{rate:>10.0f}{_mib(imp.get('db_bytes', 0)):>9}"
        )
    print()
    print(
        f"{'size':<7}{'algorithm':<13}{'load_s':>8}{'epochs':>7}{'s/epoch':>9}{'cpu/ep':>8}{'epochs_s':>9}"
        f"{'total_s':>9}{'cpu_s':>8}{'refit_s':>9}{'peak_GiB':>9}{'model_MB':>10}{'db_store_s':>11}"
        f"{'ndcg@10':>9}{'pop':>7}{'load':>6}"
    )
    for r in results:
        for algorithm, f in r["fits"].items():
            if "error" in f or "refused" in f:
                print(f"{r['size']:<7}{algorithm:<13}  {f.get('error') or 'refused: ' + f['refused']}")
                continue
            per = f"{f['epoch_seconds']:.2f}" if f.get("epoch_seconds") is not None and f["epochs"] else "-"
            cpu = f"{f['epoch_cpu_seconds']:.2f}" if f.get("epoch_cpu_seconds") and f["epochs"] else "-"
            epochs = str(f["epochs"]) if f["epochs"] else "-"
            through = f"{f['epochs_seconds']:.1f}" if f.get("epochs_seconds") else "-"
            print(
                f"{r['size']:<7}{algorithm:<13}{f['load_seconds']:>8.1f}{epochs:>7}{per:>9}{cpu:>8}"
                f"{through:>9}{f['total_seconds']:>9.1f}{f.get('total_cpu_seconds', 0):>8.1f}"
                f"{(f['refit_seconds'] or 0):>9.1f}"
                f"{_gib(f['peak_rss']):>9}{_mib(f['model_bytes']):>10}{f['store_seconds']:>11.1f}"
                f"{(f['ndcg@10'] or 0):>9.3f}{(f['popularity_ndcg@10'] or 0):>7.3f}"
                f"{f.get('load_average', 0):>6.1f}"
            )
    print(flush=True)
    print_stages(results)


#: The stage table's columns: (heading, how to read it from a fit's results).
STAGE_COLUMNS = (
    ("load", lambda f, st, fit, refit: f["load_seconds"]),
    ("split", lambda f, st, fit, refit: st.get("split")),
    ("network", lambda f, st, fit, refit: fit.get("network")),
    ("linear", lambda f, st, fit, refit: fit.get("linear_path")),
    ("weight", lambda f, st, fit, refit: fit.get("linear_weight")),
    ("val+eval", lambda f, st, fit, refit: _rest(st, fit)),
    ("refit_net", lambda f, st, fit, refit: refit.get("network")),
    ("refit_lin", lambda f, st, fit, refit: _sum(refit.get("linear_path"), refit.get("linear_weight"))),
    ("refit", lambda f, st, fit, refit: st.get("refit")),
    ("write", lambda f, st, fit, refit: f["total_seconds"] - (f.get("training_seconds") or 0)),
    ("store", lambda f, st, fit, refit: f["store_seconds"]),
)


def _sum(*values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _rest(stages: dict, fit: dict) -> float | None:
    """Choosing's seconds beyond the model's own fit (its validation score) plus the held-out evaluation."""
    if "choose" not in stages:
        return None
    return stages["choose"] - sum(fit.values()) + stages.get("evaluation", 0.0)


def print_stages(results: list[dict]) -> None:
    """Seconds per stage of each run, from the start of the read to the stored model (`run_min`):
    where a run's time goes, and how each stage grows from one size to the next."""
    print(
        f"{'size':<7}{'algorithm':<13}"
        + "".join(f"{name:>10}" for name, _ in STAGE_COLUMNS)
        + f"{'run_min':>9}"
    )
    for r in results:
        for algorithm, f in r["fits"].items():
            if "error" in f or "refused" in f:
                continue
            stages = f.get("stages") or {}
            fit, refit = stages.get("fit_parts") or {}, stages.get("refit_parts") or {}
            cells = [read(f, stages, fit, refit) for _, read in STAGE_COLUMNS]
            run = (f["load_seconds"] + f["total_seconds"] + f["store_seconds"]) / 60
            print(
                f"{r['size']:<7}{algorithm:<13}"
                + "".join(f"{c:>10.1f}" if c is not None else f"{'-':>10}" for c in cells)
                + f"{run:>9.1f}"
            )
    print(flush=True)
