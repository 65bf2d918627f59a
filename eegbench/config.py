"""Suite configuration: YAML with ``include:``, scales, variants and ``--set`` overrides, validated.

A suite file is resolved in layers, later ones winning: included files, the file itself, the
chosen scale (``scales.<name>``), the chosen variant (``variants.<name>``), then ``--set`` pairs.
Scale and variant entries are dotted overrides (``stages.finetune.lr: 1e-4``; ``null`` removes a
stage). The merged tree is validated with pydantic; each component validates its own section with
its ``Config`` model, so an unknown key or bad value is reported with its full dotted path and
the layer that set it. The resolved config has a stable hash that names the run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eegbench import contracts, registry
from eegbench.errors import UserError

SCALES = ("ci", "small", "paper")
DEFAULT_VARIANT = "default"
DEFAULT_SCALE = "small"


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def added(default: Any, **field: Any) -> Any:
    """A stage option added after runs were stored: left at ``default`` (the behaviour before it existed) it is
    left out of the run id, so those runs keep their ids and stay reusable; set, it names a new run."""
    return Field(default, json_schema_extra={"added": True}, **field)


def _added_defaults(config_model: type[BaseModel]) -> dict[str, Any]:
    return {name: f.default for name, f in config_model.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("added")}


class ComponentRef(BaseModel):
    """A section naming a registered component; its other keys go to the component's ``Config``."""

    model_config = ConfigDict(extra="allow")
    name: str


class StageRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str


class Models(StrictModel):
    """Local folders of pretrained models; unset ones come from the synthetic world when allowed.

    ``sd``: a diffusers Stable Diffusion folder; ``clip``: an open_clip model folder; ``judge``: the
    n-way judge (``vit_h_14.pth`` + ``classes.json``, or a synthetic judge folder). ``synthetic_recipe``
    names the training budget of the synthetic world's own models (``synthetic.foundation.RECIPES``).
    """

    sd: str | None = None
    clip: str | None = None
    judge: str | None = None
    text: str | None = None  # a transformers BERT-type folder; unset = the packaged all-MiniLM-L6-v2
    lm: str | None = None  # a transformers causal LM folder (e.g. gpt2)
    captioner: str | None = None  # a transformers BLIP captioning folder
    synthetic_recipe: Literal["tiny", "ci", "small"] = "ci"


class SuiteFile(StrictModel):
    """The shape of a suite file before its components validate their own sections."""

    suite: str
    description: str = ""
    cite: str | None = None
    seed: int = 0
    real_inputs_only: bool = False  # true: never fall back to the synthetic world (paper scales)
    dataset: ComponentRef
    models: Models = Models()
    runtime: dict[str, Any] = {}  # device, precision, processes: checked by eegbench.runtime.RuntimeConfig
    stages: dict[str, StageRef | None]
    evaluate: list[str] = Field(min_length=1)
    evaluation_args: dict[str, dict[str, Any]] = {}  # per evaluation, checked by its Config
    controls: list[str] = []
    probes: list[str] = []
    variants: dict[str, dict[str, Any]] = {}
    scales: dict[str, dict[str, Any]] = {}


class Resolved(BaseModel):
    """A fully resolved, validated run configuration."""

    model_config = ConfigDict(frozen=True)
    suite: str
    variant: str
    scale: str
    seed: int
    description: str
    cite: str | None
    real_inputs_only: bool
    dataset: dict[str, Any]
    models: dict[str, Any]
    runtime: dict[str, Any]
    stages: dict[str, dict[str, Any]]
    evaluate: list[str]
    evaluation_args: dict[str, dict[str, Any]]
    controls: list[str]
    probes: list[str]
    source: str

    def hash(self) -> str:
        """Stable 12-hex digest of :func:`identity`."""
        return hashlib.sha256(identity(self.model_dump()).encode()).hexdigest()[:12]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False)


def identity(dump: dict) -> str:
    """The canonical JSON of what in a resolved config (``model_dump()``, or a run's stored copy of it) changes
    results: not the prose, the file path, or the device and memory settings (like thread counts, they are
    recorded in ``environment.json``); nor stage options :func:`added` later while they keep their default; a
    renamed stage or head counts under its first name. Two configs with equal identities make the same run id."""
    payload = copy.deepcopy({k: v for k, v in dump.items() if k not in ("description", "cite", "source")})
    for spec in payload["stages"].values():
        spec["kind"] = registry.stages.id_name(spec["kind"])
        if isinstance(spec.get("text"), dict):  # a text head, chosen by its registered name
            spec["text"]["kind"] = registry.heads.id_name(spec["text"]["kind"])
        for key, default in _added_defaults(registry.stages.get(spec["kind"]).Config).items():
            if key in spec and spec[key] == default:
                del spec[key]
    payload["runtime"] = {k: v for k, v in payload["runtime"].items() if k not in ("device", "gradient_checkpointing")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


# --- loading -------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such suite file; check the path or `eegbench list suites`") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a suite file must be a YAML mapping of keys such as suite:, dataset:, stages:")
    return data


def _with_includes(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """Layers ``[(label, tree)]`` of ``path`` and, before it, everything it includes."""
    path = path.resolve()
    if path in seen:
        raise UserError(f"{path}: include cycle through {' -> '.join(p.name for p in seen)}; remove one include")
    data = _read_yaml(path)
    includes = data.pop("include", [])
    includes = [includes] if isinstance(includes, str) else includes
    layers: list[tuple[str, dict]] = []
    for inc in includes:
        layers += _with_includes(path.parent / inc, seen + (path,))
    return layers + [(str(path), data)]


def deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dotted_to_tree(overrides: dict[str, Any]) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, keeping ``None`` (which removes what it lands on)."""
    tree: dict = {}
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = str(dotted).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``["stages.x.lr=1e-4"]`` -> ``{"stages.x.lr": 0.0001}`` (values parsed as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set stages.classify.lr=1e-4")
        out[key.strip()] = _yaml_value(raw)
    return out


def _yaml_value(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # YAML 1.1 reads 1e-4 as a string; numbers written that way are meant as floats.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _origin(layers: list[tuple[str, dict]], loc: tuple) -> str:
    """The label of the last layer that sets ``loc`` or one of its parents."""
    for label, tree in reversed(layers):
        node: Any = tree
        for part in loc:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return label
        if node is not tree and not isinstance(node, dict):
            return label
    return layers[-1][0]


def _fail(layers, loc: tuple, msg: str) -> UserError:
    key = ".".join(str(p) for p in loc)
    return UserError(f"{_origin(layers, loc)}: {key}: {msg}")


def _pydantic_error(layers, prefix: tuple, exc: ValidationError, model: type[BaseModel]) -> UserError:
    err = exc.errors()[0]
    loc = prefix + tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        import difflib

        fields = list(_model_at(model, err["loc"][:-1]).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(fields)}"
        return _fail(layers, loc, f"unknown key; {hint}")
    if err["type"] == "missing":
        return _fail(layers, loc, "required key is missing; add it")
    return _fail(layers, loc, f"{err['msg']} (got {err.get('input')!r}); fix the value")


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The nested pydantic model that ``loc`` (a path of field names) leads to."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            break
        model = field.annotation
    return model


def validate_component(layers, prefix: tuple, config_model: type[BaseModel], section: dict) -> dict:
    try:
        return config_model.model_validate(section).model_dump(mode="json")
    except ValidationError as exc:
        raise _pydantic_error(layers, prefix, exc, config_model) from None


def suite_path(name_or_path: str) -> Path:
    """A registered suite name, or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    return Path(registry.suites.get(name_or_path))



def _check_chain(layers, dataset: str, dataset_cls, stages: dict[str, dict], seed: int) -> None:
    """The stages' contracts (``eegbench.contracts``), in order: each takes the kind of model the stage before
    it hands on (the first, nothing) and finds in the dataset what it requires; the first mismatch fails."""
    handed, before = None, None
    offers = set(getattr(dataset_cls, "offers", ()))
    for name, spec in stages.items():
        stage = registry.stages.get(spec["kind"])(name, spec, seed)
        if not contracts.accepts(stage.consumes, handed):
            given = f"{before!r} before it hands on {contracts.a(handed)}" if before else "it comes first"
            raise _fail(layers, ("stages", name, "kind"), f"{spec['kind']} takes {contracts.describe(stage.consumes)}, "
                        f"but {given}; reorder the stages or change their kinds")
        lacking = sorted(set(stage.requires) - offers)
        if lacking:
            raise _fail(layers, ("stages", name, "kind"), f"{spec['kind']} needs the dataset's "
                        f"{' and '.join(lacking)}, which {dataset} does not offer; pick a dataset that has them")
        if spec.get("init_from") and handed is not None:
            raise _fail(layers, ("stages", name, "init_from"), f"init_from starts a fresh encoder, but {before!r} hands "
                        f"{name!r} {contracts.a(handed)}; remove init_from or that stage")
        handed, before = stage.hands_on, name


_RESOLVING: list[tuple[str, str]] = []  # the suites/variants init_from is resolving, outermost first


def _run_named(layers, loc: tuple, source: str, scale: str, seed: int, current: tuple[str, str]) -> str:
    """``init_from`` as stored: ``suite/variant/<run id>`` of that suite at this scale and seed (found in the run's
    store), or an existing run folder's absolute path."""
    parts = source.split("/")
    if len(parts) == 2 and parts[0] in registry.suites:
        suite, variant = parts
        if tuple(parts) in (*_RESOLVING, current):
            raise _fail(layers, loc, f"{source!r} starts from itself (init_from runs in a circle); name another run")
        _RESOLVING.append(current)
        try:
            return f"{suite}/{variant}/{resolve(suite, variant=variant, scale=scale, seed=seed).hash()}"
        finally:
            _RESOLVING.pop()
    folder = Path(source).expanduser()
    if (folder / "run.json").is_file():
        return str(folder.resolve())
    raise _fail(layers, loc, f"{source!r} is neither a run folder (with run.json) nor <suite>/<variant>; name one")


def resolve(suite: str, *, variant: str = DEFAULT_VARIANT, scale: str = DEFAULT_SCALE,
            overrides: dict[str, Any] | None = None, seed: int | None = None,
            data_root: str | None = None, weights: dict[str, str] | None = None) -> Resolved:
    """Load, layer and validate one (suite, variant, scale); raise UserError naming file and key."""
    path = suite_path(suite)
    layers = _with_includes(path)
    merged: dict = {}
    for _, tree in layers:
        merged = deep_merge(merged, tree)
    label = layers[-1][0]
    try:
        shape = SuiteFile.model_validate(merged)
    except ValidationError as exc:
        raise _pydantic_error(layers, (), exc, SuiteFile) from None

    if scale not in SCALES:
        raise UserError(f"--scale {scale!r}: unknown scale; use one of {', '.join(SCALES)}")
    if variant != DEFAULT_VARIANT and variant not in shape.variants:
        known = ", ".join([DEFAULT_VARIANT, *shape.variants])
        raise UserError(f"{label}: unknown variant {variant!r}; known variants: {known}")
    for name, tree in (("scales." + scale, shape.scales.get(scale, {})), ("variants." + variant, shape.variants.get(variant, {}))):
        layers.append((f"{label} ({name})", dotted_to_tree(tree)))
    cli = dict(overrides or {})
    if seed is not None:
        cli["seed"] = seed
    if data_root is not None:
        cli["dataset.root"] = str(Path(data_root).resolve())
    for name, folder in (weights or {}).items():
        cli[f"models.{name}"] = str(Path(folder).resolve())

    tree = {k: v for k, v in merged.items() if k not in ("variants", "scales")}
    for _, layer in layers[-2:]:
        tree = deep_merge(tree, layer)
    cli = dotted_to_tree(cli)
    for name, spec in list(cli.get("stages", {}).items()):  # --set on a stage this variant removes: not for it
        if name in tree.get("stages", {}) and tree["stages"][name] is None and "kind" not in (spec or {}):
            del cli["stages"][name]
    layers.append(("--set", cli))
    tree = deep_merge(tree, cli)
    for section in ("stages", "evaluation_args"):  # null removes an entry
        tree[section] = {k: v for k, v in (tree.get(section) or {}).items() if v is not None}
    try:
        shape = SuiteFile.model_validate(tree)
    except ValidationError as exc:
        raise _pydantic_error(layers, (), exc, SuiteFile) from None

    dataset_cls = registry.datasets.get(shape.dataset.name)
    dataset = {"name": shape.dataset.name, **validate_component(
        layers, ("dataset",), dataset_cls.Config, {k: v for k, v in tree["dataset"].items() if k != "name"})}
    stages = {}
    for stage_name, ref in shape.stages.items():
        stage_cls = _known(layers, ("stages", stage_name, "kind"), registry.stages, ref.kind)
        kind = registry.stages.renamed.get(ref.kind, ref.kind)
        if kind != ref.kind:
            warnings.warn(f"{_origin(layers, ('stages', stage_name, 'kind'))}: stages.{stage_name}.kind: {ref.kind!r} is "
                          f"now called {kind!r}; write kind: {kind} (same runs, same ids)", FutureWarning, stacklevel=2)
        body = {k: v for k, v in tree["stages"][stage_name].items() if k != "kind"}
        stages[stage_name] = {"kind": kind, **validate_component(layers, ("stages", stage_name), stage_cls.Config, body)}
    for stage_name, spec in stages.items():
        if spec.get("init_from"):
            spec["init_from"] = _run_named(layers, ("stages", stage_name, "init_from"), spec["init_from"], scale,
                                           shape.seed, (shape.suite, variant))
    _check_chain(layers, shape.dataset.name, dataset_cls, stages, shape.seed)
    last = list(stages)[-1] if stages else None
    final = registry.stages.get(stages[last]["kind"])(last, stages[last], shape.seed) if last else None
    produces = set(final.produces) if final else set()
    offers = set(getattr(dataset_cls, "offers", ()))
    for i, name in enumerate(shape.evaluate):
        evaluate = _known(layers, ("evaluate", i), registry.evaluations, name)
        reads = set(getattr(evaluate, "reads", ()))
        if last and not reads <= produces:
            raise _fail(layers, ("evaluate", i), f"{name} scores {' and '.join(sorted(reads))}, but the last stage {last!r} "
                        f"predicts {' and '.join(sorted(produces)) or 'nothing'}; pick evaluations for it "
                        "(`eegbench list evaluations`) or add a stage")
        lacking = sorted(set(getattr(evaluate, "requires", ())) - offers)
        if lacking:
            raise _fail(layers, ("evaluate", i), f"{name} needs the dataset's {' and '.join(lacking)}, which "
                        f"{shape.dataset.name} does not offer; pick evaluations for this dataset")
        compared = getattr(evaluate, "comparison", None)
        if final and compared and compared not in final.comparisons:
            raise _fail(layers, ("evaluate", i), f"{name} scores {compared} models, which the last stage {last!r} "
                        "does not train; remove it or end with a stage that does")
    for name in shape.evaluation_args:
        if name not in shape.evaluate:
            raise _fail(layers, ("evaluation_args", name), f"{name} is not in evaluate: {shape.evaluate}; remove it or add it there")
        if not hasattr(registry.evaluations.get(name), "Config"):
            raise _fail(layers, ("evaluation_args", name), f"{name} takes no arguments; remove them")
    evaluation_args = {name: validate_component(layers, ("evaluation_args", name), fn.Config,
                                                shape.evaluation_args.get(name, {}))
                       for name in shape.evaluate if hasattr(fn := registry.evaluations.get(name), "Config")}
    for i, name in enumerate(shape.controls):
        control = _known(layers, ("controls", i), registry.controls, name)
        made = set(getattr(control, "produces", ()))
        if last and not made <= produces:
            raise _fail(layers, ("controls", i), f"{name} retrains the last stage's {' and '.join(sorted(made))} head, "
                        f"but {last!r} predicts {' and '.join(sorted(produces)) or 'nothing'}; remove {name}")
        if final and getattr(control, "model_control", False) and name not in final.comparisons:
            raise _fail(layers, ("controls", i), f"{name} is a model the last stage trains, but {last!r} "
                        f"({stages[last]['kind']}) cannot train it; remove {name}")
    for i, name in enumerate(shape.probes):
        _known(layers, ("probes", i), registry.probes, name)
    from eegbench.runtime import RuntimeConfig

    runtime = validate_component(layers, ("runtime",), RuntimeConfig, shape.runtime)
    return Resolved(suite=shape.suite, variant=variant, scale=scale, seed=shape.seed,
                    description=shape.description, cite=shape.cite, real_inputs_only=shape.real_inputs_only,
                    dataset=dataset, models=shape.models.model_dump(), runtime=runtime, stages=stages,
                    evaluate=shape.evaluate, evaluation_args=evaluation_args, controls=shape.controls, probes=shape.probes, source=str(path))


def _known(layers, loc: tuple, reg: registry.Registry, name: str):
    try:
        return reg.get(name)
    except UserError as exc:
        raise _fail(layers, loc, str(exc)) from None


def _merged(suite: str) -> dict:
    merged: dict = {}
    for _, tree in _with_includes(suite_path(suite)):
        merged = deep_merge(merged, tree)
    return merged


def variants(suite: str) -> list[str]:
    """The default variant followed by the suite's named variants."""
    return [DEFAULT_VARIANT, *(_merged(suite).get("variants") or {})]


def variant_overrides(suite: str, variant: str) -> dict[str, Any]:
    """The dotted overrides that define ``variant`` of ``suite`` (none for the default)."""
    return dict((_merged(suite).get("variants") or {}).get(variant) or {})
