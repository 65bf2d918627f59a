import subprocess
import sys

import pytest

from eegbench import registry
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
