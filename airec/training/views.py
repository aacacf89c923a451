"""Start and watch training runs; evaluate the active model."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from airec.audit import service as audit
from airec.extensions import Blueprint
from airec.serving.served import served_model
from airec.tables import TrainingRun, utcnow
from airec.training import service
from airec.training.evaluation import NothingToEvaluate, evaluate_active
from airec.training.schemas import (
    ConflictSchema,
    EvaluationRequestSchema,
    EvaluationSchema,
    RunEnvelopeSchema,
    RunListQuerySchema,
    RunListSchema,
    RunSchema,
    TrainingRequestSchema,
)

blp = Blueprint("training", __name__, url_prefix="/api/v1", description="Training runs and evaluation.")


def run_dict(run: TrainingRun, with_history: bool = False) -> dict:
    duration = None
    if run.started_at:
        end = run.finished_at or utcnow()
        duration = round((end - run.started_at).total_seconds(), 3)
    out = {
        "id": run.id,
        "status": run.status,
        "algorithm": run.algorithm,
        "trigger": run.trigger,
        "params": run.params,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "progress": {
            "epoch": run.epoch,
            "max_epochs": run.max_epochs,
            "train_loss": run.train_loss,
            "val_loss": run.val_loss,
        },
        "model_version": run.model_version,
        "activated": run.activated,
        "note": run.note,
        "error": run.error,
    }
    if with_history:
        out["history"] = run.history or []
    return out


@blp.route("/training")
class Training(MethodView):
    @blp.arguments(TrainingRequestSchema)
    @blp.response(202, RunEnvelopeSchema)
    @blp.alt_response(409, schema=ConflictSchema, description="A run is already in progress")
    def post(self, body):
        """Start a training run in the background."""
        try:
            run = service.start_run(settings=current_app.config["AIREC"], **body)
        except service.TrainingConflict as conflict:
            running = RunSchema().dump(run_dict(conflict.run)) if conflict.run is not None else None
            abort(409, message="A training run is already in progress; wait for it to finish.", run=running)
        except service.TrainingRefused as exc:
            abort(422, message=str(exc))
        audit.record(audit.Action.TRAINING_STARTED, f"run {run.id}", details={"algorithm": run.algorithm})
        return {"run": run_dict(run)}


@blp.route("/training/runs")
class Runs(MethodView):
    @blp.arguments(RunListQuerySchema, location="query")
    @blp.response(200, RunListSchema)
    def get(self, query):
        """Training runs, newest first."""
        runs = service.list_runs(settings=current_app.config["AIREC"], limit=query["limit"])
        return {"runs": [run_dict(r) for r in runs]}


@blp.route("/training/runs/<int:run_id>")
class Run(MethodView):
    @blp.response(200, RunEnvelopeSchema)
    def get(self, run_id):
        """One training run with its per-epoch history."""
        service.reap_stale_runs(current_app.config["AIREC"])
        run = TrainingRun.get_or_none(TrainingRun.id == run_id)
        if run is None:
            abort(404, message=f"No training run with id {run_id}.")
        return {"run": run_dict(run, with_history=True)}


@blp.route("/evaluation")
class Evaluation(MethodView):
    @blp.arguments(EvaluationRequestSchema)
    @blp.response(200, EvaluationSchema)
    def post(self, body):
        """Hit rate, NDCG and recall at k of the active model on its held-out units, vs popularity."""
        try:
            return evaluate_active(model=served_model.active, k=body["k"])
        except NothingToEvaluate as exc:
            abort(409, message=str(exc))
