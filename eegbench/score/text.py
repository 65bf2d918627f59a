"""``eegbench score text``: the benchmark's BLEU and ROUGE on predictions made elsewhere.

A CSV file (a header row) or a JSONL file (one JSON object a line) gives a reference and a prediction
per row. Every BLEU and ROUGE metric of the chosen definition is scored by the runs' own code
(``evaluate.text.text_metrics``, ``evaluate.report.metric_record``): the same value, bootstrap 95% CI
and chance level (each prediction paired with another row's reference) as in a run's metrics.json.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from eegbench.errors import UserError
from eegbench.evaluate.text_definitions import DEFINITIONS

METRICS = (("bleu", "text_bleu"), ("rouge", "text_rouge"))
SUFFIXES = (".csv", ".jsonl")


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV or JSONL file as dicts; UserError naming the file and line of what cannot be read."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass a CSV or JSONL file of references and predictions")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: unknown file type {path.suffix or '(none)'}; give a .csv (with a header row) "
                        "or a .jsonl (one JSON object a line) file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return _csv_rows(path, text) if path.suffix.lower() == ".csv" else _jsonl_rows(path, text)


def _csv_rows(path: Path, text: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        rows = []
        for fields in reader:
            if not fields:  # a blank line
                continue
            if len(fields) != len(header):
                raise UserError(f"{path}: line {reader.line_num} has {len(fields)} fields, the header {len(header)}; "
                                "quote fields that hold commas")
            rows.append(dict(zip(header, fields)))
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not valid CSV ({exc}); quote fields that hold commas "
                        "or quotes") from None
    return rows


def _jsonl_rows(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number}: not JSON ({exc.msg}); write one JSON object a line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {number} is a JSON {type(row).__name__}, not an object; write one "
                            "object a line, e.g. {\"reference\": ..., \"prediction\": ...}")
        rows.append(row)
    return rows


def read_pairs(path: Path, reference: str, prediction: str) -> tuple[list[str], list[str]]:
    """References and predictions from the columns ``reference`` and ``prediction`` of ``path``.

    A missing prediction (null, empty) is an empty output, scored as the definition says; a missing
    reference is an error, as are a missing column and fewer than two rows (chance needs another row).
    """
    rows = read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows; give one row per prediction with its reference")
    columns = sorted({key for row in rows for key in row})
    for option, column in (("--reference", reference), ("--prediction", prediction)):
        if not any(column in row for row in rows):
            raise UserError(f"{path}: no column {column!r}; the columns are {', '.join(columns)}; pass {option} "
                            "with one of them")
    if len(rows) < 2:
        raise UserError(f"{path}: one row; chance pairs each prediction with another row's reference, so give "
                        "at least two rows")
    references, predictions = [], []
    for number, row in enumerate(rows, 1):
        ref = row.get(reference)
        if ref is None or not str(ref).strip():
            raise UserError(f"{path}: row {number} has no {reference!r} (the reference); fill it or drop the row")
        references.append(str(ref))
        predictions.append("" if row.get(prediction) is None else str(row[prediction]))
    return references, predictions


def score_file(path: Path, reference: str, prediction: str, definition: str = "sacrebleu", seed: int = 0) -> dict:
    """``{"file", "reference", "prediction", "definition", "n", "values": {metric: value}, "metrics": [records]}``:
    every BLEU and ROUGE metric of ``definition`` on the file's pairs, records as in a run's metrics.json."""
    from eegbench.evaluate.report import metric_record
    from eegbench.evaluate.text import text_metrics

    if definition not in DEFINITIONS:
        raise UserError(f"--definition {definition}: unknown; use one of {', '.join(DEFINITIONS)}")
    references, predictions = read_pairs(path, reference, prediction)
    records = [metric_record(f"{name}/{part}", "file", scored, {}, seed)
               for kind, name in METRICS
               for part, scored in text_metrics(kind, definition, predictions, references, seed).items()]
    return {"file": str(path), "reference": reference, "prediction": prediction, "definition": definition,
            "n": len(references), "values": {r["metric"]: r["value"] for r in records}, "metrics": records}
