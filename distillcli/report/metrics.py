"""metrics.json: one stable schema that reports, plots and CI gates read.

    {
      "schema": "distillcli.metrics", "schema_version": 1,
      "run":   {name, dir, status: running|ok|failed, error, started, finished, seconds,
                device, seed, threads, versions, recipe_file},
      "data":  {name, num_classes, class_names, input_shape, train_samples, val_samples},
      "teacher": <measures> | null,       # the teacher as loaded/built, before any step
      "steps": [{
          index, kind, target ("student" | "teacher"), options (the step's resolved config),
          seconds, model_file (relative to the run dir, or null),
          measures: {top1, top5, loss, per_class_top1[], samples, params, nonzero_params,
                     macs, file_bytes, latency_ms: {"<batch>": ms}, threads, device},
          curve: [{epoch, lr, train_loss, train_top1, val_loss, val_top1, val_top5,
                   images_per_s, seconds}],
          best: {epoch, val_top1} | null,   # best epoch of the curve; the model kept is the last
          info: {...}                        # step-specific (sparsity, compression, ...)
      }]
    }
"""

from __future__ import annotations

from typing import Any

SCHEMA = "distillcli.metrics"
SCHEMA_VERSION = 1


def new_metrics(run: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run": run, "data": data, "teacher": None, "steps": []}


def best_epoch(curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    rows = [r for r in curve if r.get("val_top1") is not None]
    if not rows:
        return None
    top = max(rows, key=lambda r: r["val_top1"])
    return {"epoch": top["epoch"], "val_top1": top["val_top1"]}
