"""Published numbers from ``baselines/<suite>.yaml``: shown beside runs, never mixed with them.

Each file names its source, a tag (``code``, ``data`` or ``reported``; see baselines/README.md)
and the setting the numbers come from, and lists rows of (variant, metric, value, definition,
note). Every row must name a variant of the suite and a metric of a registered evaluation
(``evaluation``, or ``evaluation/part`` for evaluations that report parts; the part itself is known
only after a run), so a renamed variant or evaluation cannot leave a published number attached to
nothing; and the metric ``definition`` the number was computed with (the ``"definition"`` an
evaluation's result names, e.g. ``dreamdiffusion``, ``thought2text``, ``per-window``): a number is
shown beside a run's only when the run's metric has that definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from eegbench import config, registry
from eegbench.config import StrictModel
from eegbench.errors import UserError


class Row(StrictModel):
    variant: str
    metric: str
    value: float
    definition: str = Field(min_length=1)
    note: str = ""


class Baselines(StrictModel):
    suite: str
    source: str
    tag: Literal["code", "data", "reported"]
    setting: str
    rows: list[Row]


def baselines_dir() -> Path:
    """The checkout's ``baselines/`` folder, or its copy inside an installed wheel."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "baselines"
    return checkout if checkout.is_dir() else package / "baselines"


def load(suite: str, folder: Path | None = None) -> Baselines | None:
    """The published rows for ``suite``, validated; None when there is no file for it."""
    path = (folder or baselines_dir()) / f"{suite}.yaml"
    if not path.is_file():
        return None
    try:
        published = Baselines.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); see baselines/README.md") from None
    except ValidationError as exc:
        raise UserError(f"{path}: {_problem(exc)}; see baselines/README.md") from None
    if published.suite != suite:
        raise UserError(f"{path}: names suite {published.suite!r}; a baselines file is named after its suite, "
                        f"rename it to {published.suite}.yaml or fix the suite key")
    known = config.variants(published.suite)
    for i, row in enumerate(published.rows):
        if row.variant not in known:
            raise UserError(f"{path}: rows.{i}.variant {row.variant!r} is not a variant of {published.suite}; "
                            f"use one of {', '.join(known)}")
        if row.metric.split("/")[0] not in registry.evaluations:
            raise UserError(f"{path}: rows.{i}.metric {row.metric!r} is not a registered evaluation; "
                            "`eegbench list evaluations` shows them")
    return published


def _problem(exc: ValidationError) -> str:
    """The first validation error as ``key path: what is wrong``, e.g. ``rows.3.definition: required key is missing``."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "top level"
    if err["type"] == "extra_forbidden":
        model = Row if err["loc"][0] == "rows" else Baselines
        return f"{key}: unknown key; a {'row' if model is Row else 'baselines file'} has {', '.join(model.model_fields)}"
    if err["type"] == "missing":
        hint = " (the metric definition the number was computed with)" if err["loc"][-1] == "definition" else ""
        return f"{key}: required key is missing{hint}; add it"
    return f"{key}: {err['msg']} (got {err.get('input')!r})"
