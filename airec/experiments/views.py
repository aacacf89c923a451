"""A/B experiments between model versions (admin)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort

from airec.audit import service as audit
from airec.experiments import service
from airec.experiments.schemas import ExperimentRequestSchema, ExperimentSchema
from airec.extensions import Blueprint
from airec.serving.served import served_model

blp = Blueprint(
    "experiments", __name__, url_prefix="/api/v1", description="A/B experiments between model versions."
)


def _refresh() -> None:
    """This worker serves the change at once; the others at their next model poll."""
    served_model.sync_experiment()


@blp.route("/experiments")
class Experiments(MethodView):
    @blp.arguments(ExperimentRequestSchema)
    @blp.response(201, ExperimentSchema)
    @blp.alt_response(409, description="Another experiment runs, or the name is taken")
    def post(self, body: dict):
        """Start an experiment: each user is served by one variant's model version for its whole run.

        Users are assigned by a stable hash of the experiment's name and the user (requests without a
        user, at random), in proportion to the weights. One experiment runs at a time; every worker
        holds each variant's model in memory while it runs.
        """
        try:
            started = service.start(body["name"], body["variants"])
        except service.UnknownVersion as exc:
            abort(
                422,
                message=f"Invalid input. {exc}",
                messages={"json": {"variants": {str(exc.index): {"model_version": [str(exc)]}}}},
            )
        except service.ExperimentConflict as exc:
            abort(409, message=str(exc))
        audit.record(
            audit.Action.EXPERIMENT_STARTED,
            body["name"],
            details={"variants": {v["name"]: v["model_version"] for v in body["variants"]}},
        )
        _refresh()
        return started

    @blp.response(200, ExperimentSchema(many=True))
    def get(self):
        """Every experiment, newest first, with its results."""
        return service.listing()


@blp.route("/experiments/<string:name>")
class ExperimentResults(MethodView):
    @blp.response(200, ExperimentSchema)
    @blp.alt_response(404, description="No experiment by that name")
    def get(self, name: str):
        """Impressions, takes and take rate (95% Wilson interval) per variant, each later variant's
        difference from the first (95% interval), the verdict and the winner (null unless significant).
        The verdict is "not enough data" until every variant has 1,000 impressions."""
        try:
            return service.results(name)
        except service.ExperimentNotFound as exc:
            abort(404, message=str(exc))


@blp.route("/experiments/<string:name>/stop")
class StopExperiment(MethodView):
    @blp.response(200, ExperimentSchema)
    @blp.alt_response(404, description="No experiment by that name")
    @blp.alt_response(409, description="It is not running")
    def post(self, name: str):
        """Stop an experiment: the active model serves everyone again; its results stay readable."""
        try:
            stopped = service.stop(name)
        except service.ExperimentNotFound as exc:
            abort(404, message=str(exc))
        except service.ExperimentConflict as exc:
            abort(409, message=str(exc))
        audit.record(audit.Action.EXPERIMENT_STOPPED, name)
        _refresh()
        return stopped
