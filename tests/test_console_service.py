"""The console's own small pieces: the schedule summary, suggestions before any model, metric picking,
and the server-drawn charts (escaped, and sane with no or one point)."""

from __future__ import annotations

import datetime as dt
import time

from airec import leases
from airec.config import Settings
from airec.console import service
from airec.console.charts import Series, bar_chart, line_chart
from airec.ingestion.service import ingest_records


def test_schedule_says_when_the_next_check_comes_and_whether_it_will_train(db):
    assert service.schedule(Settings(train_every="off"))["reason"] == "AIREC_TRAIN_EVERY is off"
    stopped = Settings(train_every="30m", scheduler=False)
    assert service.schedule(stopped)["reason"] == "AIREC_SCHEDULER is false"
    settings = Settings(train_every="30m")
    before = service.schedule(settings)
    assert before["enabled"] and before["within_seconds"] == 1800 and before["new_data"] is False
    ingest_records([{"items": ["a", "b"]}])
    slot = int(time.time() // 1800)
    assert leases.claim_slot(service.SCHEDULE_SLOT_KEY, slot)
    after = service.schedule(settings)
    assert after["new_data"] is True
    assert after["next_after"] == dt.datetime.fromtimestamp((slot + 1) * 1800, dt.UTC).replace(tzinfo=None)


def test_suggestions_before_any_model_come_from_stored_popularity(db):
    from airec.serving.served import served_model

    served_model.swap(None)
    ingest_records([{"items": ["Apple", "pineapple"]}, {"items": ["pineapple", "grape"]}])
    assert service.suggest_items(query="") == ["pineapple", "Apple", "grape"]
    assert service.suggest_items(query="app") == ["Apple", "pineapple"]  # starts-with first
    assert service.suggest_items(query="APP", limit=1) == ["Apple"]


def test_metric_pairs_follow_the_protocol():
    strong = {
        "protocol": "strong",
        "model": {"ndcg@10": 0.3, "recall@20": 0.4},
        "popularity": {"ndcg@10": 0.1, "recall@20": 0.2},
    }
    assert [m["name"] for m in service.metric_pairs(strong)] == ["ndcg@10", "recall@20"]
    loo = {"protocol": "loo", "model": {"ndcg@10": 0.3, "hit_rate@10": 0.5}, "popularity": {}}
    assert service.metric_pairs(loo)[1] == {"name": "hit_rate@10", "model": 0.5, "popularity": None}
    assert service.metric_pairs({}) == [] and service.metric_pairs(None) == []


def test_charts_escape_labels_and_draw_what_they_are_given():
    bars = bar_chart([("<b>", 3), ("x", 0)], chart_id="c", title="T & <t>", unit="things")
    assert "<b>" not in bars and "&lt;b&gt;" in bars and "T &amp; &lt;t&gt;" in bars
    assert bars.count('<rect class="bar"') == 2 and 'role="img"' in bars
    assert "No data." in bar_chart([], chart_id="e", title="t", unit="u")
    rates = bar_chart(
        [("d1", 6.25), ("d2", 0.0)], chart_id="r", title="t", unit="%", digits=2, description="2 days"
    )
    assert "<title>d1: 6.25 %</title>" in rates and ">2 days</desc>" in rates and "total" not in rates
    lines = line_chart(
        [Series("loss", [(1, 5.0), (2, 4.0), (3, 3.5)], "s1"), Series("none", [], "s2")],
        chart_id="l",
        title="t",
        x_name="epoch",
    )
    assert lines.count("<polyline") == 1 and "loss: 3 points, last 3.5" in lines and "epoch 3" in lines
    single = line_chart([Series("m", [(1, 0.25)], "s1")], chart_id="s", title="t", x_name="version")
    assert single.count("<circle") == 1
    assert "no data yet" in line_chart([Series("m", [], "s1")], chart_id="n", title="t", x_name="epoch")
