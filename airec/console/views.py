"""The console's pages: overview, models, training, try it. Thin: each calls the API's own services.

Sign-in, sign-out and the keys page are in airec/console/access_views.py; the gate that decides who
may see what (the API's roles) is airec/console/access.py, run before every console request.
"""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from marshmallow import ValidationError

from airec import leases
from airec.audit import service as audit
from airec.console import service
from airec.console.access import required
from airec.console.charts import Series, bar_chart, line_chart
from airec.errors import describe_validation
from airec.serving import service as serving_service
from airec.serving.schemas import RecommendationQuerySchema, SimilarQuerySchema, UserRecommendationQuerySchema
from airec.tables import TrainingRun
from airec.training import service as training_service
from airec.training.choices import CHOICES
from airec.training.schemas import TrainingRequestSchema
from airec.training.status import FINISHED, RunStatus
from airec.training.views import run_dict
from airec.versions import service as versions_service

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)

#: Version API refusals answer with the API's status codes (see airec/versions/views.py).
REFUSALS = {
    versions_service.VersionNotFound: 404,
    versions_service.VersionConflict: 409,
    versions_service.VersionCorrupt: 422,
}


def may(endpoint: str) -> bool:
    """May this request's viewer use that console endpoint (by the API's role for it)?"""
    return g.viewer is not None and g.viewer.may_any(required(endpoint, current_app.config["AIREC"]))


def _refuse(exc: Exception):
    abort(REFUSALS.get(type(exc), 500), description=str(exc))


@bp.get("/")
def overview():
    """Counts, interactions per day, popular items, the active model, the schedule and health."""
    settings = current_app.config["AIREC"]
    data = service.overview(settings=settings, with_models=may("console.models"))
    chart = bar_chart(
        [(day["date"], day["interactions"]) for day in data["daily"]],
        chart_id="daily-chart",
        title=f"Interactions stored per day (UTC), last {service.CHART_DAYS} days",
        unit="interactions",
    )
    return render_template(
        "console/overview.html",
        chart=Markup(chart),
        take_chart=_take_rate_chart(data["online"]),
        may_train=may("console.train"),
        **data,
    )


def _take_rate_chart(days: list[dict]) -> Markup | None:
    """Take rate per day in percent (days without impressions: no bar); None when nothing was shown."""
    shown = sum(day["impressions"] for day in days)
    if not shown:
        return None
    taken = sum(day["takes"] for day in days)
    measured = sum(1 for day in days if day["impressions"])
    chart = bar_chart(
        [(day["date"], 100 * (day["take_rate"] or 0.0)) for day in days],
        chart_id="take-rate-chart",
        title=f"Take rate per day (UTC), last {len(days)} days, in percent",
        unit="%",
        digits=2,
        description=f"{measured} of {len(days)} days had impressions; over all of them "
        f"{taken:,} takes of {shown:,} impressions, {100 * taken / shown:.2f}%.",
    )
    return Markup(chart)


@bp.get("/models")
def models():
    """Every version with its held-out metrics against popularity, and the headline metric over time."""
    listing = versions_service.list_versions()
    plotted = service.versions_for_chart(listing["versions"])

    def points(side: str) -> list[tuple[float, float]]:
        return [(v["n"], v["evaluation"][side][service.HEADLINE]) for v in plotted]

    chart = line_chart(
        [Series("model", points("model"), "s1"), Series("popularity", points("popularity"), "s2")],
        chart_id="versions-chart",
        title=f"{service.HEADLINE} on held-out units, by version (oldest first)",
        x_name="version",
    )
    return render_template(
        "console/models.html",
        versions=listing["versions"],
        active=listing["active"],
        plotted=plotted,
        chart=Markup(chart),
        metric_name=service.HEADLINE,
        may_activate=may("console.activate"),
        may_archive=may("console.archive"),
        may_unpin=may("console.unpin"),
        pinned=listing["pinned"],
    )


@bp.get("/models/<string:version>")
def model(version: str):
    """One version: what GET /api/v1/models/<version> says, as facts and as its JSON."""
    try:
        described = versions_service.get_version(version)
    except versions_service.VersionNotFound as exc:
        _refuse(exc)
    manifest = json.dumps(described, indent=2, default=str, ensure_ascii=False)
    return render_template(
        "console/model.html",
        model=described,
        manifest=manifest,
        active=leases.get_active_version(),
        may_activate=may("console.activate"),
        may_archive=may("console.archive"),
    )


def _confirm_or_act(version: str, action: str):
    """GET: the confirmation page. POST: the version action, then back to the models page."""
    try:
        target = versions_service.get_version(version)
    except versions_service.VersionNotFound as exc:
        _refuse(exc)
    active = leases.get_active_version()
    if request.method == "GET":
        return render_template("console/confirm_model.html", model=target, action=action, active=active)
    try:
        if action == "activate":
            result = versions_service.activate(version)
            audit.record(audit.Action.MODEL_ACTIVATED, version, details={"previous": result["previous"]})
            flash(
                f"Model {version} is active now (was {result['previous'] or 'none'}) and pinned: "
                "every worker serves it within seconds, and training runs keep it until you unpin "
                "it."
            )
        else:
            versions_service.archive(version)
            audit.record(audit.Action.MODEL_ARCHIVED, version)
            flash(f"Model {version} is archived: its files are deleted; it stays listed.")
    except tuple(REFUSALS) as exc:
        _refuse(exc)
    return redirect(url_for(".models"), 303)


@bp.route("/models/<string:version>/activate", methods=["GET", "POST"])
def activate(version: str):
    """Promote or roll back, after a confirmation."""
    return _confirm_or_act(version, "activate")


@bp.post("/models/unpin")
def unpin():
    """Let training runs activate new versions again (POST /api/v1/models/unpin)."""
    result = versions_service.unpin()
    audit.record(audit.Action.MODEL_UNPINNED, result["unpinned"])
    if result["unpinned"]:
        flash(f"Model {result['unpinned']} is no longer pinned: the next training run may replace it.")
    return redirect(url_for(".models"), 303)


@bp.route("/models/<string:version>/archive", methods=["GET", "POST"])
def archive(version: str):
    """Delete a non-active version's files, after a confirmation."""
    return _confirm_or_act(version, "archive")


def _run_panel(run: TrainingRun) -> dict:
    """A run as the API shows it, plus its progress and its per-epoch curves drawn."""
    data = run_dict(run, with_history=True)
    history = [h for h in data["history"] if isinstance(h, dict)]
    epochs = [h.get("epoch") for h in history]
    monotonic = all(isinstance(e, int) for e in epochs) and epochs == sorted(set(epochs))
    x_name = "epoch" if monotonic else "step"  # 'auto' restarts epochs for each candidate

    def series(key: str, name: str, css: str) -> Series:
        points = [
            ((h["epoch"] if monotonic else i + 1), float(h[key]))
            for i, h in enumerate(history)
            if isinstance(h.get(key), (int, float))
        ]
        return Series(name, points, css)

    losses = [series("train_loss", "train loss", "s1"), series("val_loss", "validation loss", "s2")]
    losses = [s for s in losses if s.points]
    metric_keys = sorted({k for h in history for k in h if k.startswith("val_") and k != "val_loss"})
    metrics = [series(key, key.replace("val_", "validation "), "s3") for key in metric_keys]
    epoch, max_epochs = data["progress"]["epoch"], data["progress"]["max_epochs"]
    percent = min(100, round(100 * epoch / max_epochs)) if max_epochs else 0
    if data["status"] == RunStatus.SUCCEEDED:
        percent = 100
    return {
        **data,
        "finished": data["status"] in FINISHED,
        "percent": percent,
        "loss_series": losses,
        "metric_series": metrics,
        "loss_chart": _chart(losses, "loss-chart", "Loss per epoch", x_name),
        "metric_chart": _chart(metrics, "metric-chart", "Validation metric per epoch", x_name),
    }


def _chart(series: list[Series], chart_id: str, title: str, x_name: str) -> Markup | None:
    return Markup(line_chart(series, chart_id=chart_id, title=title, x_name=x_name)) if series else None


@bp.get("/training")
def training():
    """The runs, the selected (or newest) run with live progress and curves, and a train-now form."""
    settings = current_app.config["AIREC"]
    runs = service.recent_runs(settings=settings)
    selected_id = request.args.get("run", type=int)
    newest = runs[0] if runs else None
    selected = service.find_run(selected_id, settings=settings) if selected_id else newest
    if selected_id and selected is None:
        abort(404, description=f"No training run with id {selected_id}.")
    return render_template(
        "console/training.html",
        runs=[run_dict(run) for run in runs],
        run=_run_panel(selected) if selected else None,
        algorithms=CHOICES,
        default_algorithm=current_app.config["AIREC"].algorithm,
        may_train=may("console.train"),
    )


@bp.get("/training/runs/<int:run_id>/progress")
def run_progress(run_id: int):
    """The run panel, for the page's script to swap in while the run is in flight."""
    run = service.find_run(run_id, settings=current_app.config["AIREC"])
    if run is None:
        abort(404, description=f"No training run with id {run_id}.")
    panel = _run_panel(run)
    html = render_template("console/_run.html", run=panel)
    return jsonify(id=run_id, status=panel["status"], finished=panel["finished"], html=html)


@bp.post("/training")
def train():
    """Start a run in the background (as POST /api/v1/training) and watch it."""
    try:
        body = TrainingRequestSchema().load({"algorithm": request.form.get("algorithm") or None})
    except ValidationError as exc:
        abort(422, description=describe_validation(exc.messages))
    try:
        run = training_service.start_run(settings=current_app.config["AIREC"], trigger="console", **body)
    except training_service.TrainingConflict as conflict:
        g.error_link = url_for(".training", run=conflict.run.id) if conflict.run else None
        abort(409, description="A training run is already in progress; wait for it to finish.")
    except training_service.TrainingRefused as exc:
        abort(422, description=str(exc))
    audit.record(audit.Action.TRAINING_STARTED, f"run {run.id}", details={"algorithm": run.algorithm})
    return redirect(url_for(".training", run=run.id), 303)


def _k(errors: dict, field: str) -> int:
    text = request.args.get("k", "10").strip()
    if not text.isdigit():
        errors[field] = f"k must be a whole number, not {text!r}."
        return 10
    return int(text)


def _catalogue_filters() -> dict:
    """/try's category and label filters (each one name, or left out when empty)."""
    picked = {
        name: request.args.get(field, "").strip()
        for name, field in (("categories", "category"), ("labels", "label"))
    }
    return {name: [value] for name, value in picked.items() if value}


def _load(schema, values: dict, errors: dict, field: str) -> dict | None:
    try:
        return schema.load(values)
    except ValidationError as exc:
        errors[field] = describe_validation(exc.messages)
        return None


@bp.get("/try")
def try_it():
    """Complete a set of items, look up a user, or find similar items: the serving API, by hand."""
    args, errors = request.args, {}
    answer: dict = {}
    if "items" in args:
        items = [name.strip() for name in args.getlist("items") if name.strip()]
        values = {"items": items, "k": _k(errors, "items"), "explain": True, **_catalogue_filters()}
        query = _load(RecommendationQuerySchema(), values, errors, "items")
        if query is not None:
            answer["proposals"] = {"items": items, **serving_service.recommend(**query)}
    if args.get("user", "").strip():
        user = args["user"].strip()
        values = {"k": _k(errors, "user"), "explain": True}
        query = _load(UserRecommendationQuerySchema(), values, errors, "user")
        if query is not None:
            try:
                limit = current_app.config["AIREC"].max_history
                found = serving_service.recommend_for_user(user=user, max_history=limit, **query)
                answer["user"] = {**found, "history": serving_service.user_history(user)}
            except serving_service.UnknownUser:
                errors["user"] = f"No user {user!r}: nothing was recorded for them."
    if args.get("item", "").strip():
        item = args["item"].strip()
        query = _load(SimilarQuerySchema(), {"k": _k(errors, "item")}, errors, "item")
        if query is not None and serving_service.active_model() is None:
            errors["item"] = "No model is active yet: train one first."
        elif query is not None:
            answer["similar"] = serving_service.similar_items(item=item, **query)
            if answer["similar"] is None:
                errors["item"] = f"The active model does not know {item!r} (new, or never seen)."
    return render_template(
        "console/try.html",
        answer=answer,
        errors=errors,
        suggestions=service.suggest_items(query="", limit=50),
        args=args,
    )


@bp.get("/try/items")
def suggest():
    """Item names for the autocomplete, from the active model's catalogue."""
    query = request.args.get("q", "")[:256]
    return jsonify(items=service.suggest_items(query=query, limit=20))
