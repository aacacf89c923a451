"""The console's Items page: search the catalogue, see an item, hide or show it in one click."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from airec.audit import service as audit
from airec.catalogue import service as catalogue_service
from airec.console.access import api_role
from airec.console.views import bp, may
from airec.ingestion.service import name_problem

PAGE_SIZE = 50


def _sees_counts() -> bool:
    """Interaction counts (and the popularity order they give) are statistics: only for viewers whose
    key may read them through the API; an ingest key sees the catalogue in name order."""
    return g.viewer.may(api_role("stats.Items", "GET", current_app.config["AIREC"]))


def _filters() -> dict:
    """The page's filters from the query string; a name that breaks the name rules is dropped."""
    args = request.args
    hidden = {"yes": True, "no": False}.get(args.get("hidden", ""))
    return {
        "name_contains": args.get("q", "").strip()[:256],
        "category": [c for c in args.getlist("category") if c and not name_problem(c)][:10],
        "label": [label for label in args.getlist("label") if label and not name_problem(label)][:10],
        "hidden": hidden,
    }


@bp.get("/items")
def items():
    """Items with their counts, by name, category, label and the hidden flag."""
    filters = _filters()
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
    counts = _sees_counts()
    rows, total = catalogue_service.list_items(
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, by_name=not counts, **filters
    )
    return render_template(
        "console/items.html",
        rows=rows,
        counts=counts,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        filters=filters,
        args=request.args,
    )


@bp.get("/items/show")
def item():
    """One item: metadata, interaction count, visibility; the hide/show button for writers."""
    name = request.args.get("item", "")
    if name_problem(name):
        abort(404)
    found = catalogue_service.describe(name)
    if found is None:
        abort(404)
    return render_template(
        "console/item.html", item=found, may_write=may("console.set_visibility"), counts=_sees_counts()
    )


@bp.post("/items/visibility")
def set_visibility():
    """Hide or show an item (PATCH hidden), then back to the item."""
    name = request.form.get("item", "")
    problem = name_problem(name)
    if problem:
        abort(422, description=f"item: {problem}")
    hidden = request.form.get("hidden") == "true"
    catalogue_service.update(name, {"hidden": hidden})
    audit.record(audit.Action.CATALOGUE_CHANGED, name, details={"hidden": hidden})
    flash(f"{name} is {'hidden: no answer will hold it' if hidden else 'shown again'}.", "ok")
    return redirect(url_for("console.item", item=name))
