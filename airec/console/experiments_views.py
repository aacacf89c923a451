"""The console's Experiments pages: the list with a start form, one experiment's results, and stopping
it after a confirmation. Each calls airec.experiments' service as POST/GET /api/v1/experiments do, and
audits the change with the console's signed-in key as the actor."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from airec.audit import service as audit
from airec.console.views import bp, may
from airec.errors import describe_validation
from airec.experiments import service as experiment_service
from airec.experiments.schemas import NAME, ExperimentRequestSchema
from airec.experiments.verdict import MIN_IMPRESSIONS
from airec.serving.served import served_model
from airec.versions import service as versions_service

#: Variant rows on the start form; the first two are required, the others used when given a version.
FORM_ROWS = 4
#: What the rows are called until someone renames them.
DEFAULT_NAMES = ("control", "new", "third", "fourth")
#: Versions an experiment may name (the service refuses archived and failed ones).
SERVABLE = ("active", "ready")
_NAME_PATTERN = NAME.regex


def _servable_versions() -> list[dict]:
    return [v for v in versions_service.list_versions()["versions"] if v["status"] in SERVABLE]


def _checked_name(name: str) -> str:
    """An experiment name from the path, refused before it reaches a query when it could never exist."""
    if not _NAME_PATTERN.match(name):
        abort(422, description=f"name: {NAME.error}")
    return name


def _read_form(form) -> tuple[dict, list[int]]:
    """The request body POST /api/v1/experiments takes, and for each variant its form row. Blank fields
    are left out so the schema names what is missing; rows past the first two count when they name a
    version."""
    variants, rows = [], []
    for row in range(FORM_ROWS):
        fields = {k: form.get(f"variant-{row}-{k}", "").strip() for k in ("name", "model_version", "weight")}
        if row >= 2 and not fields["model_version"]:
            continue
        variants.append({k: v for k, v in fields.items() if v})
        rows.append(row)
    name = form.get("name", "").strip()
    return {**({"name": name} if name else {}), "variants": variants}, rows


def _field_errors(messages: dict, rows: list[int]) -> dict[str, str]:
    """marshmallow's {"variants": {0: {"weight": [...]}}} as {"variant-<row>-weight": "..."} (the form's
    field names), and whole-field messages under their own names."""
    out: dict[str, str] = {}
    for field, value in messages.items():
        if field == "variants" and isinstance(value, dict):
            for index, problems in value.items():
                if not isinstance(problems, dict) or int(index) >= len(rows):
                    out["variants"] = _sentence(problems)
                    continue
                for name, text in problems.items():
                    out[f"variant-{rows[int(index)]}-{name}"] = _sentence(text)
        else:
            out[field] = _sentence(value)
    return out


def _sentence(messages) -> str:
    return " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)


def _listing_page(*, form=None, error: str | None = None, fields: dict | None = None, status: int = 200):
    return render_template(
        "console/experiments.html",
        experiments=experiment_service.listing(),
        versions=_servable_versions(),
        may_start=may("console.start_experiment"),
        rows=FORM_ROWS,
        default_names=DEFAULT_NAMES,
        form=form or {},
        error=error,
        fields=fields or {},
    ), status


@bp.get("/experiments")
def experiments():
    """Every experiment, newest first, with its verdict; the start form for those who may start one."""
    return _listing_page()


@bp.post("/experiments")
def start_experiment():
    """Start an experiment from the form (as POST /api/v1/experiments); errors name the field, and a
    refused form stores nothing."""
    body, rows = _read_form(request.form)
    try:
        body = ExperimentRequestSchema().load(body)
        started = experiment_service.start(body["name"], body["variants"])
    except ValidationError as exc:
        fields = _field_errors(exc.messages, rows)
        return _listing_page(
            form=request.form, error=describe_validation(exc.messages), fields=fields, status=422
        )
    except experiment_service.UnknownVersion as exc:
        field = f"variant-{rows[exc.index]}-model_version"
        return _listing_page(
            form=request.form, error=f"Invalid input. {field}: {exc}", fields={field: str(exc)}, status=422
        )
    except experiment_service.ExperimentConflict as exc:
        return _listing_page(form=request.form, error=str(exc), status=409)
    audit.record(
        audit.Action.EXPERIMENT_STARTED,
        started["name"],
        details={"variants": {v["name"]: v["model_version"] for v in body["variants"]}},
    )
    served_model.sync_experiment()  # this worker at once, the others at their next model poll
    flash(f"Experiment {started['name']} is running: each user now sees one variant's model.", "ok")
    return redirect(url_for("console.experiment", name=started["name"]), 303)


def _results(name: str) -> dict:
    try:
        return experiment_service.results(_checked_name(name))
    except experiment_service.ExperimentNotFound as exc:
        abort(404, description=str(exc))


@bp.get("/experiments/<string:name>")
def experiment(name: str):
    """One experiment: per variant impressions, takes and take rate with its interval; the differences
    from the first variant and the verdict."""
    return render_template(
        "console/experiment.html",
        experiment=_results(name),
        min_impressions=MIN_IMPRESSIONS,
        may_stop=may("console.stop_experiment"),
    )


@bp.route("/experiments/<string:name>/stop", methods=["GET", "POST"])
def stop_experiment(name: str):
    """GET: the confirmation. POST (CSRF): stop it, as POST /api/v1/experiments/<name>/stop."""
    current = _results(name)
    if request.method == "GET":
        if current["status"] != experiment_service.Status.RUNNING:
            abort(409, description=f"Experiment {name!r} is not running.")
        return render_template("console/confirm_stop_experiment.html", experiment=current)
    try:
        experiment_service.stop(name)
    except experiment_service.ExperimentConflict as exc:
        abort(409, description=str(exc))
    audit.record(audit.Action.EXPERIMENT_STOPPED, name)
    served_model.sync_experiment()
    flash(f"Experiment {name} is stopped: the active model serves everyone again.", "ok")
    return redirect(url_for("console.experiment", name=name), 303)
