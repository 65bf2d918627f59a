import subprocess
import sys

import pytest

from eegbench import registry
from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.registry import Registry


def test_decorator_and_direct_registration():
    reg = Registry("widget")

    @reg.register("square")
    class Square:
        """Four equal sides."""

    reg.register("circle", object())
    assert reg.get("square") is Square
    assert [e.name for e in reg] == ["circle", "square"]
    assert next(e for e in reg if e.name == "square").summary == "Four equal sides."


def test_lazy_entry_imports_only_when_used():
    reg = Registry("thing")
    reg.register("od", lazy="collections:OrderedDict")
    entry = next(iter(reg))
    assert not entry.loaded
    import collections

    assert reg.get("od") is collections.OrderedDict
    assert entry.loaded


def test_decorator_may_fill_its_own_lazy_entry_but_not_steal_a_name():
    reg = Registry("thing")
    reg.register("od", lazy="collections:OrderedDict")
    import collections

    reg.register("od", collections.OrderedDict)  # the lazy target's own decorator running
    with pytest.raises(ValueError, match="already registered"):
        reg.register("od", dict)


def test_unknown_name_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'deep4'"):
        registry.encoders.get("deep5")
    with pytest.raises(UserError, match="unknown suite 'smok'.*'smoke'"):
        registry.suites.get("smok")


def test_builtins_resolve_to_real_objects():
    for reg in registry.REGISTRIES.values():
        for entry in reg:
            assert reg.get(entry.name) is not None, entry.name


def test_plugins_arrive_through_entry_points(monkeypatch, tmp_path):
    suite = tmp_path / "plugged.yaml"
    suite.write_text("description: from a plugin\n")

    def plugin():
        registry.heads.register("plugin-head", lazy="collections:Counter", summary="a plugin's head")
        registry.register_suite_file(suite)

    class FakeEntryPoint:
        def load(self):
            return plugin

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == registry.PLUGIN_GROUP else [])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry.heads, "_entries", dict(registry.heads._entries))
    monkeypatch.setattr(registry.suites, "_entries", dict(registry.suites._entries))
    assert "plugin-head" in registry.heads
    assert registry.suites.get("plugged") == suite


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "encoders"]])
def test_cli_help_and_list_do_not_import_torch(args):
    code = ("import sys; from eegbench.cli import app\n"
            f"try: app({args!r})\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    expected = {"--help": ["run", "list", "show"], "list": ["deep4", "smoke"], "encoders": ["deep4"]}[args[-1]]
    assert all(word in out.stdout for word in expected), out.stdout


def test_every_builtin_honours_its_kinds_contract():
    """Not only importable: each entry is what its registry promises."""
    import inspect

    import numpy as np
    import torch

    from eegbench.evaluate.context import higher_is_better
    from eegbench.models.pretrained import FLAGS
    from eegbench.train.stage import Stage

    from eegbench import config, contracts
    from eegbench.models.tokens import as_token_encoder

    built, trained = set(), set()
    for suite in registry.suites:  # each stage as a suite configures it (needs and produces follow the config)
        for name, spec in config.resolve(suite.name, scale="ci").stages.items():
            stage = registry.stages.get(spec["kind"])(name, spec, 0)
            assert isinstance(stage, Stage) and callable(stage.run) and callable(stage.predict), spec["kind"]
            assert set(stage.needs) <= set(FLAGS) and all(isinstance(k, str) for k in stage.produces), spec["kind"]
            assert stage.hands_on in contracts.IS_ALSO and set(stage.consumes) <= {None, *contracts.IS_ALSO}, spec["kind"]
            assert set(stage.requires) <= set(contracts.DATA_ITEMS), spec["kind"]
            assert all(callable(stage.train_comparison) and isinstance(c, str) for c in stage.comparisons), spec["kind"]
            built.add(spec["kind"])
            trained.update(stage.comparisons)
    assert built == set(registry.stages.names())  # every stage kind is used by some suite
    for entry in registry.evaluations:
        fn = registry.evaluations.get(entry.name)
        assert fn.reads and all(isinstance(k, str) for k in fn.reads), entry.name
        assert set(fn.needs) <= set(FLAGS) and isinstance(higher_is_better(entry.name, fn), bool), entry.name
        assert set(fn.requires) <= set(contracts.DATA_ITEMS), entry.name
        assert fn.comparison is None or fn.comparison in trained, entry.name  # some stage trains what it scores
    eeg = torch.randn(2, 4, 512)
    for entry in registry.encoders:  # built as the stages build them: EEG [B, C, T] -> features [B, out_dim]
        small = {"embed_dim": 16, "depth": 1, "heads": 2, "decoder_embed_dim": 8, "decoder_depth": 1,
                 "decoder_heads": 2} if entry.name == "mae-vit" else {}
        encoder = registry.encoders.get(entry.name)(n_chans=4, n_times=512, out_dim=8, **small).eval()
        assert isinstance(encoder, torch.nn.Module) and encoder(eeg).shape == (2, 8) and encoder.out_dim == 8, entry.name
        tokens = as_token_encoder(encoder)  # what the image head's conditioner and the text heads read
        assert contracts.conforms(tokens, "token-encoder"), entry.name
        assert tokens.tokens(eeg).shape == (2, tokens.n_tokens, tokens.embed_dim), entry.name
    for entry in registry.heads:  # by role: a classifier maps features to logits; a text head is built from settings
        head = registry.heads.get(entry.name)
        assert head.role in ("classifier", "text", "image") and set(head.needs) <= set(FLAGS), entry.name
        assert registry.heads.role(entry.name) == head.role, entry.name  # registered as what the class says it is
        if head.role == "classifier":
            assert head(8, 3)(torch.zeros(2, 8)).shape == (2, 3), entry.name
        elif head.role == "text":
            assert all(callable(getattr(head, m, None)) for m in ("build", "loss", "generate")), entry.name
        else:
            assert callable(head.context) and callable(head.diffusion_loss), entry.name
    for entry in registry.controls:
        control = registry.controls.get(entry.name)
        if getattr(control, "model_control", False):
            assert isinstance(control, contracts.ModelControl) and control.produces and entry.name in trained, entry.name
        else:
            x = np.random.default_rng(0).normal(size=(5, 4, 64)).astype(np.float32)
            assert control(x, 0).shape == x.shape and not np.array_equal(control(x, 0), x), entry.name
    for entry in registry.probes:
        assert list(inspect.signature(registry.probes.get(entry.name)).parameters)[0] == "data", entry.name
    for entry in registry.datasets:
        dataset = registry.datasets.get(entry.name)
        assert issubclass(dataset.Config, StrictModel) and callable(dataset.load), entry.name
        assert dataset.Config().root is None, entry.name  # unset root: the synthetic world
        assert {"eeg", "splits"} <= set(dataset.offers) <= set(contracts.DATA_ITEMS), entry.name
