from pathlib import Path

import pytest

from eegbench import config
from eegbench.errors import UserError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """
suite: mini
dataset: {name: imagenet-eeg}
stages:
  classify: {kind: supervised, epochs: 3}
evaluate: [nway_top1]
controls: [shuffled_eeg]
variants:
  longer: {stages.classify.epochs: 9}
scales:
  ci: {stages.classify.batch_size: 16}
"""


def test_smoke_resolves_with_defaults_filled():
    cfg = config.resolve("smoke", scale="ci")
    assert cfg.suite == "smoke" and cfg.scale == "ci" and cfg.variant == "default"
    assert cfg.stages["classify"]["epochs"] == 15
    assert cfg.stages["classify"]["select_on"] == "val"
    assert cfg.dataset["world"]["classes"] >= 2


def test_layers_apply_in_order(tmp_path):
    path = write(tmp_path, "mini.yaml", BASE)
    cfg = config.resolve(str(path), variant="longer", scale="ci", overrides={"stages.classify.lr": 0.01})
    stage = cfg.stages["classify"]
    assert (stage["epochs"], stage["batch_size"], stage["lr"]) == (9, 16, 0.01)


def test_include_inherits_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "include: base.yaml\nsuite: child\nstages:\n  classify: {epochs: 5}\n")
    cfg = config.resolve(str(child))
    assert cfg.suite == "child" and cfg.stages["classify"]["epochs"] == 5
    assert cfg.stages["classify"]["kind"] == "supervised"
    assert config.variants(str(child)) == ["default", "longer"]


def test_null_removes_a_stage(tmp_path):
    text = BASE.replace("stages:\n", "stages:\n  extra: {kind: supervised}\n")
    path = write(tmp_path, "mini.yaml", text)
    assert list(config.resolve(str(path), overrides={"stages.extra": None}).stages) == ["classify"]


def test_hash_is_stable_and_sensitive(tmp_path):
    path = write(tmp_path, "mini.yaml", BASE)
    a = config.resolve(str(path))
    reordered = write(tmp_path, "again.yaml", BASE.replace("suite: mini\n", "") + "suite: mini\ndescription: prose is not hashed\n")
    assert config.resolve(str(reordered)).hash() == a.hash()
    assert config.resolve(str(path), seed=1).hash() != a.hash()
    assert config.resolve(str(path), overrides={"stages.classify.lr": 0.5}).hash() != a.hash()
    assert len(a.hash()) == 12


def test_the_committed_references_name_the_runs_the_current_configs_make():
    """An option added to a stage at its old behaviour keeps earlier run ids (``config.added``); anything else
    that re-keys a suite's runs shows here, and its references must be rewritten (``eegbench check --update``)."""
    import json

    refs = sorted((Path(__file__).parents[1] / "leaderboards").glob("*.ci.reference.json"))
    assert refs
    for path in refs:
        ref = json.loads(path.read_text())
        for seed, run_id in ref["runs"].items():
            assert config.resolve(ref["suite"], scale="ci", seed=int(seed)).hash() == run_id, (path.name, seed)


@pytest.mark.parametrize("edit, message", [
    (("epochs: 3", "epochs: 3, lrr: 0.1"), r"mini.yaml: stages.classify.lrr: unknown key; did you mean 'lr'"),
    (("epochs: 3", "epochs: -1"), r"mini.yaml: stages.classify.epochs: .*greater than or equal to 1"),
    (("suite: mini", "suite: mini\ncolour: red"), r"mini.yaml: colour: unknown key"),
    (("kind: supervised", "kind: supervized"), r"stages.classify.kind: unknown stage 'supervized'; did you mean 'supervised'"),
    (("[nway_top1]", "[nway_top2]"), r"evaluate.0: unknown evaluation 'nway_top2'"),
    (("name: imagenet-eeg", "name: imagenet-eeg, subjekt: 2"), r"dataset.subjekt: unknown key; did you mean 'subject'"),
])
def test_bad_keys_and_values_name_file_and_key(tmp_path, edit, message):
    path = write(tmp_path, "mini.yaml", BASE.replace(*edit))
    with pytest.raises(UserError, match=message):
        config.resolve(str(path))


def test_errors_name_the_layer_that_set_the_key(tmp_path):
    path = write(tmp_path, "mini.yaml", BASE)
    with pytest.raises(UserError, match=r"^--set: stages.classify.epochs"):
        config.resolve(str(path), overrides=config.parse_set(["stages.classify.epochs=many"]))
    bad_scale = write(tmp_path, "scaled.yaml", BASE.replace("batch_size: 16", "batch_sise: 16"))
    with pytest.raises(UserError, match=r"scaled.yaml \(scales.ci\): stages.classify.batch_sise: unknown key"):
        config.resolve(str(bad_scale), scale="ci")


def test_checkpoints_can_never_be_selected_on_test(tmp_path):
    path = write(tmp_path, "mini.yaml", BASE)
    with pytest.raises(UserError, match="select_on"):
        config.resolve(str(path), overrides={"stages.classify.select_on": "test"})


def test_unknown_variant_scale_and_file(tmp_path):
    path = write(tmp_path, "mini.yaml", BASE)
    with pytest.raises(UserError, match="unknown variant 'shorter'; known variants: default, longer"):
        config.resolve(str(path), variant="shorter")
    with pytest.raises(UserError, match="unknown scale"):
        config.resolve(str(path), scale="huge")
    with pytest.raises(UserError, match="no such suite file"):
        config.resolve(str(tmp_path / "missing.yaml"))
    broken = write(tmp_path, "broken.yaml", "suite: [unclosed\n")
    with pytest.raises(UserError, match="broken.yaml: line 2 is not valid YAML"):
        config.resolve(str(broken))


def test_parse_set_values():
    assert config.parse_set(["a.b=1e-4", "c=3", "d=null", "e=text", "f=[1, 2]"]) == {
        "a.b": 1e-4, "c": 3, "d": None, "e": "text", "f": [1, 2]}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        config.parse_set(["novalue"])


def test_every_suite_variant_and_scale_resolves():
    from eegbench import registry

    import yaml

    for entry in registry.suites:
        raw = yaml.safe_load(Path(registry.suites.get(entry.name)).read_text())
        for variant in ["default", *raw.get("variants", {})]:
            for scale in ["ci", "small", "paper"]:
                cfg = config.resolve(entry.name, variant=variant, scale=scale)
                assert cfg.suite == entry.name and cfg.variant == variant and cfg.stages, (entry.name, variant, scale)


@pytest.mark.parametrize("stages, evaluate, dataset, message", [
    ("{pre: {kind: msm}, talk: {kind: projector}}", "[text_bleu]", "imagenet-eeg",
     r"stages.talk.kind: projector takes a classifier, but 'pre' before it hands on a token-encoder"),
    ("{talk: {kind: projector}}", "[text_bleu]", "imagenet-eeg",
     r"stages.talk.kind: projector takes a classifier, but it comes first"),
    ("{classify: {kind: supervised}, pre: {kind: msm}}", "[nway_top1]", "imagenet-eeg",
     r"stages.pre.kind: msm takes nothing \(it comes first\), but 'classify' before it hands on a classifier"),
    ("{align: {kind: contrastive}}", "[retrieval]", "imagenet-eeg",
     r"stages.align.kind: contrastive needs the dataset's recordings and reports, which imagenet-eeg"),
    ("{classify: {kind: supervised}}", "[nway_top1, linear_probe]", "tuab",
     r"evaluate.1: linear_probe scores embeddings, but the last stage 'classify' predicts logits"),
    ("{pre: {kind: msm}, gen: {kind: joint}}", "[zero_shot]", "imagenet-eeg",
     r"evaluate.0: zero_shot scores embeddings, but the last stage 'gen' predicts images"),
])
def test_a_chain_that_does_not_fit_is_refused_at_the_first_mismatch(tmp_path, stages, evaluate, dataset, message):
    path = write(tmp_path, "chain.yaml", f"suite: chain\ndataset: {{name: {dataset}}}\nstages: {stages}\n"
                                         f"evaluate: {evaluate}\n")
    with pytest.raises(UserError, match=r"chain.yaml: " + message):
        config.resolve(str(path))


def test_an_evaluation_needing_what_the_dataset_lacks_is_refused(tmp_path, monkeypatch):
    from eegbench import registry

    path = write(tmp_path, "mini.yaml", BASE.replace("[nway_top1]", "[nway_top1, reports_read]"))
    fn = registry.evaluations.get("nway_top1")
    stub = type("Stub", (), {"reads": fn.reads, "needs": (), "requires": ("reports",), "higher_is_better": True})
    monkeypatch.setitem(registry.evaluations._entries, "reports_read", registry.Entry("reports_read", obj=stub))
    with pytest.raises(UserError, match=r"evaluate.1: reports_read needs the dataset's reports, which imagenet-eeg "
                                        r"does not offer"):
        config.resolve(str(path))


def test_show_rejects_a_mismatched_chain_before_any_work(tmp_path, monkeypatch, capsys):
    from test_cli import invoke

    path = write(tmp_path, "chain.yaml", "suite: chain\ndataset: {name: imagenet-eeg}\n"
                                         "stages: {pre: {kind: msm}, talk: {kind: projector}}\nevaluate: [text_bleu]\n")
    code, _, err = invoke(monkeypatch, capsys, "show", str(path))
    assert code == 2 and "projector takes a classifier, but 'pre' before it hands on a token-encoder" in err
    assert len(err.strip().splitlines()) == 1


def test_set_on_a_stage_the_variant_removes_is_not_for_that_variant():
    """``--variant all --set stages.msm.epochs=1`` shortens msm where there is one and leaves the msm-less variants."""
    assert list(config.resolve("dreamdiffusion", variant="deep4", overrides={"stages.msm.epochs": 1}).stages) == ["generate"]
    assert config.resolve("dreamdiffusion", overrides={"stages.msm.epochs": 1}).stages["msm"]["epochs"] == 1
    with pytest.raises(UserError, match=r"stages.msn"):  # a stage the suite never had is still an error
        config.resolve("dreamdiffusion", variant="deep4", overrides={"stages.msn.epochs": 1})


def test_a_named_encoder_must_be_registered_and_come_first():
    with pytest.raises(UserError, match=r"stages.generate.encoder: .*unknown encoder 'deep5'; did you mean 'deep4'"):
        config.resolve("dreamdiffusion", variant="deep4", overrides={"stages.generate.encoder": "deep5"})
    with pytest.raises(UserError, match=r"stages.generate.kind: joint takes nothing \(it comes first\), but 'msm'"):
        config.resolve("dreamdiffusion", overrides={"stages.generate.encoder": "deep4"})
    default = config.resolve("dreamdiffusion", scale="ci")
    assert "encoder" in default.stages["generate"]  # recorded in the run's config, left out of its id at its default
    assert config.resolve("dreamdiffusion", scale="ci", variant="deep4").hash() != default.hash()


def test_a_renamed_stage_kind_still_resolves_with_a_warning_and_the_same_run_id(tmp_path):
    old = write(tmp_path, "old.yaml", Path(config.suite_path("dreamdiffusion")).read_text().replace("kind: joint", "kind: generative"))
    with pytest.warns(FutureWarning, match=r"old.yaml: stages.generate.kind: 'generative' is now called 'joint'"):
        renamed = config.resolve(str(old), scale="ci")
    assert renamed.stages["generate"]["kind"] == "joint"
    assert renamed.hash() == config.resolve("dreamdiffusion", scale="ci").hash()


def test_a_renamed_text_head_still_resolves_with_a_warning_and_the_same_run_id(tmp_path):
    old = write(tmp_path, "old.yaml", Path(config.suite_path("multitask")).read_text().replace("kind: prefix-lm", "kind: generative"))
    with pytest.warns(FutureWarning, match=r"text.kind: 'generative' is now called 'prefix-lm'"):
        renamed = config.resolve(str(old), scale="ci")
    assert renamed.stages["joint"]["text"]["kind"] == "prefix-lm"
    assert renamed.hash() == config.resolve("multitask", scale="ci").hash()
    with pytest.raises(UserError, match=r"stages.joint.text.kind: .*'classifier' is not a registered text head; use one "
                                        r"of prefix-lm, retrieval"):
        config.resolve("multitask", overrides={"stages.joint.text.kind": "classifier"})



def test_init_from_names_a_run_of_this_scale_and_seed_or_a_folder(tmp_path):
    def init(value, variant="deep4", seed=0):
        cfg = config.resolve("dreamdiffusion", variant=variant, scale="ci", seed=seed,
                             overrides={"stages.generate.init_from": value})
        return cfg.stages["generate"]["init_from"]

    assert init("eegclip/default") == f"eegclip/default/{config.resolve('eegclip', scale='ci').hash()}"
    assert init("eegclip/default", seed=2) == f"eegclip/default/{config.resolve('eegclip', scale='ci', seed=2).hash()}"
    (tmp_path / "run.json").write_text("{}")
    assert init(str(tmp_path)) == str(tmp_path.resolve())
    for value, variant, message in [
        ("nowhere", "deep4", r"'nowhere' is neither a run folder \(with run.json\) nor <suite>/<variant>"),
        ("dreamdiffusion/deep4", "deep4", r"starts from itself"),
        ("eegclip/default", "default", r"init_from starts a fresh encoder, but 'msm' hands 'generate' a token-encoder"),
    ]:
        with pytest.raises(UserError, match=rf"stages.generate.init_from: .*{message}"):
            init(value, variant)
