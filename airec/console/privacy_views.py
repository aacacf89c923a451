"""The console's Audit page (GET /api/v1/audit) and its "delete a user" page (DELETE /api/v1/users/...),
which names how many interactions will go before anything is deleted."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from airec.audit import service as audit
from airec.audit.schemas import AuditQuerySchema
from airec.console.views import bp
from airec.errors import describe_validation
from airec.ingestion.service import name_problem
from airec.privacy import retrain
from airec.privacy import service as privacy

PAGE_SIZE = 50


@bp.get("/audit")
def audit_log():
    """Who changed what, newest first, filtered by action and actor; older pages by `before`."""
    values = {k: v for k, v in request.args.items() if k in ("action", "actor", "before") and v.strip()}
    error = None
    try:
        query = AuditQuerySchema().load({**values, "limit": PAGE_SIZE})
    except ValidationError as exc:
        error, query = describe_validation(exc.messages), {"limit": PAGE_SIZE}
    page = audit.entries(**query)
    return render_template(
        "console/audit.html",
        entries=page["entries"],
        next_before=page["next_before"],
        actions=[a.value for a in audit.Action],
        args=request.args,
        error=error,
    ), (422 if error else 200)


@bp.route("/users/delete", methods=["GET", "POST"])
def delete_user():
    """GET without a name: the form. GET with one: the confirmation, naming how many interactions go.
    POST (CSRF): the deletion, as DELETE /api/v1/users/<user>."""
    name = (request.form if request.method == "POST" else request.args).get("user", "")
    if request.method == "GET" and not name:
        return render_template("console/delete_user.html", user=None, count=None)
    problem = name_problem(name)
    if problem:
        abort(422, description=f"user: {problem}")
    uid = privacy.user_id(name)
    if uid is None:
        abort(404, description=f"No user {name!r}: nothing is stored about them.")
    if request.method == "GET":
        count = privacy.interaction_count(uid)
        return render_template("console/delete_user.html", user=name, count=count)
    try:
        answer, _ = privacy.delete_user(name)
    except privacy.NotFound as exc:
        abort(404, description=str(exc))
    audit.record(audit.Action.USER_DELETED, audit.hashed_name(name), details=answer["removed"])
    retrain.note_deletion(current_app.config["AIREC"])
    gone = answer["removed"]["interactions"]
    flash(f"The user is deleted: {gone} interaction{'' if gone == 1 else 's'} removed.", "ok")
    return redirect(url_for("console.delete_user"), 303)
