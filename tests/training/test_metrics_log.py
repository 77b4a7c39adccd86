"""metrics.jsonl: one JSON object a line, appended; nothing from ranks other than 0."""

from __future__ import annotations

import json

from attnlab.training.metrics_log import METRICS_FILE, MetricsLog


def test_records_are_appended_as_json_lines_and_handed_on(tmp_path):
    seen = []
    log = MetricsLog(tmp_path / "run", also=seen.append)
    log({"event": "start"})
    log({"step": 1, "train_loss": 2.5})
    MetricsLog(tmp_path / "run")({"event": "end"})  # a later writer appends
    lines = (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"event": "start"}, {"step": 1, "train_loss": 2.5},
                                                    {"event": "end"}]
    assert seen == [{"event": "start"}, {"step": 1, "train_loss": 2.5}]


def test_disabled_or_without_a_directory(tmp_path):
    seen = []
    MetricsLog(tmp_path, enabled=False, also=seen.append)({"step": 1})
    assert not (tmp_path / METRICS_FILE).exists() and seen == []
    MetricsLog(None, also=seen.append)({"step": 2})
    assert seen == [{"step": 2}] and not list(tmp_path.iterdir())
