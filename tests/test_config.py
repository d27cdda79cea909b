import dataclasses
import functools
import subprocess
import sys
import tomllib
import typing

import pytest

from repro.config import (
    SECTIONS,
    ConfigError,
    EvalConfig,
    RunConfig,
    config_hash,
    from_dict,
    load_config,
    parse_override,
    resolve_profile,
    settings_help,
    to_dict,
    to_toml,
)
from repro.models.mnad import MNADEvalSettings


def test_toml_round_trip_is_exact(tmp_path):
    cfg = load_config("paper", ["model.mnad.skips=true", "exec.threads=2", "data.root=/data", "eval.lambda_grid=[0.5]"])
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg
    assert to_toml(load_config(path)) == to_toml(cfg)
    assert from_dict(to_dict(cfg)) == cfg


def test_default_is_the_synthetic_profile_and_dataclass_defaults_are_the_paper():
    assert load_config(None) == load_config("synthetic") == load_config(resolve_profile("synthetic"))
    assert load_config("paper") == RunConfig()


def test_hash_is_stable_across_processes():
    code = "from repro.config import load_config, config_hash; print(config_hash(load_config()))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == config_hash(load_config()) and len(other) == 12 and int(other, 16) >= 0


def _other_value(cls, name, value):
    """A valid value of `cls.name` different from `value`."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is typing.Literal:
        return next(choice for choice in typing.get_args(tp) if choice != value)
    if value is None:
        inner = next(arg for arg in typing.get_args(tp) if arg is not type(None))
        return {bool: True, int: 2, float: 0.5, str: "/somewhere"}[inner]
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, int):
        return 2 * value if value else 1  # doubling keeps a frame size a multiple of 8
    return value[:1]


def _changed(cfg, key, value):
    """`cfg` with one dotted field replaced, validation bypassed where a field is resolved (None defaults)."""
    *path, last = key.split(".")
    sections = [cfg]
    for name in path:
        sections.append(getattr(sections[-1], name))
    new = dataclasses.replace(sections[-1], **{last: value})
    for parent, name in zip(reversed(sections[:-1]), reversed(path)):
        new = dataclasses.replace(parent, **{name: new})
    return new


def test_hash_changes_with_every_field_its_method_reads_and_no_other():
    cfg = load_config()
    base = config_hash(cfg)
    for name, cls in SECTIONS.items():
        if name == "model":
            continue
        section = getattr(cfg, name)
        for f in dataclasses.fields(section):
            if dataclasses.is_dataclass(getattr(section, f.name)):
                continue  # a method's [eval.<name>]: below
            other = _changed(cfg, f"{name}.{f.name}", _other_value(cls, f.name, getattr(section, f.name)))
            unchanged = name == "exec" and f.name not in ("precision", "threads")  # these change the numbers
            assert (config_hash(other) == base) == unchanged, f"{name}.{f.name}"
    for method_name in ("mnad", "memae", "ae3d", "convlstm"):
        settings = getattr(cfg.model, method_name)
        for f in dataclasses.fields(settings):
            if f.name == "task":
                continue  # re-resolves the task's loss weights: covered by the task-table tests
            other = _changed(
                cfg, f"model.{method_name}.{f.name}", _other_value(type(settings), f.name, getattr(settings, f.name))
            )
            assert (config_hash(other) == base) == (method_name != "mnad"), f"model.{method_name}.{f.name}"
    for f in dataclasses.fields(cfg.eval.mnad):  # MNAD with memory reads every field of its [eval.mnad]
        other = _changed(
            cfg, f"eval.mnad.{f.name}", _other_value(type(cfg.eval.mnad), f.name, getattr(cfg.eval.mnad, f.name))
        )
        assert config_hash(other) != base, f"eval.mnad.{f.name}"
    assert config_hash(dataclasses.replace(cfg, seed=1)) != base
    assert config_hash(load_config(None, ["model.name=convlstm"])) != base


def test_settings_the_network_ignores_are_not_part_of_the_run():
    plain = load_config(None, ["model.mnad.memory=false"])
    for change in (
        ["model.mnad.compactness=0"],
        ["model.mnad.num_items=3"],
        ["eval.mnad.test_time_update=false"],
        ["eval.mnad.lambda_score=0.1"],
        ["model.memae.width=12"],
    ):
        other = load_config(None, ["model.mnad.memory=false", *change], unchecked=change)
        assert other != plain and config_hash(other) == config_hash(plain), change
    memae = load_config(None, ["model.name=memae"])
    ignored = ["model.mnad.width=8", "eval.mnad.gamma=0.5"]
    assert config_hash(load_config(None, ["model.name=memae", *ignored], unchecked=ignored)) == config_hash(memae)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.name=memae", "model.mnad.width=8"],
            r"model\.mnad\.width is a setting of mnad, but this run's model is memae",
        ),
        (
            ["model.mnad.memory=false", "model.mnad.separateness=0"],
            r"model\.mnad\.separateness changes nothing for mnad \(pred, without memory\)",
        ),
        (
            ["model.name=convlstm", "eval.mnad.test_time_update=false"],
            r"eval\.mnad\.test_time_update is an evaluation setting of mnad, but this run.s model is convlstm",
        ),
        (["model.name=ae3d", "model.memae.num_items=3"], r"model\.memae\.num_items is a setting of memae"),
        (["data.size=60"], r"data\.size=60: MNAD pools three times, so the frame size must be a multiple of 8"),
        (["model.name=memae", "data.size=40"], r"data\.size=40: memae downsamples space by 16"),
    ],
)
def test_an_override_its_method_never_reads_is_refused_naming_key_and_method(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_unchecked_overrides_apply_where_read_and_are_ignored_elsewhere():
    cfg = load_config(None, ["model.name=memae", "model.mnad.width=8"], unchecked=["model.mnad.width=8"])
    assert cfg.model.mnad.width == 8 and config_hash(cfg) == config_hash(load_config(None, ["model.name=memae"]))


def test_a_method_table_of_a_profile_applies_to_its_method_only(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        "[train]\nlr = 1e-3\n[method.memae.train]\nlr = 1e-4\nepochs = 100\n"
        "[method.memae.model.memae]\nwidth = 24\n[task.recon.train]\nlr = 2e-5\n"
    )
    assert load_config(path).train.lr == 1e-3
    memae = load_config(path, ["model.name=memae"])
    assert (memae.train.lr, memae.train.epochs, memae.model.memae.width) == (1e-4, 100, 24)
    assert load_config(path, ["model.mnad.task=recon"]).train.lr == 2e-5
    path.write_text('[method.memae.model]\nname = "mnad"\n')
    with pytest.raises(ConfigError, match=r"\[method\.memae\] cannot set model\.name"):
        load_config(path)


def test_int_widens_to_float_so_the_hash_does_not_depend_on_spelling():
    assert config_hash(load_config(None, ["model.mnad.separateness=0"])) == config_hash(
        load_config(None, ["model.mnad.separateness=0.0"])
    )
    separateness = load_config(None, ["model.mnad.separateness=0"]).model.mnad.separateness
    assert separateness == 0.0 and isinstance(separateness, float)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("model.mnad.separateness=0", "model.mnad.separateness", 0.0),
        ("train.epochs=3", "train.epochs", 3),
        ("eval.mnad.test_time_update=false", "eval.mnad.test_time_update", False),
        ("model.mnad.skips=true", "model.mnad.skips", True),
        ("model.mnad.skips=none", "model.mnad.skips", True),  # none = the task's: prediction has skips
        ("exec.threads=none", "exec.threads", None),
        ("model.mnad.task=recon", "model.mnad.task", "recon"),
        ("model.mnad.task='recon'", "model.mnad.task", "recon"),
        ("data.root=/data/sets", "data.root", "/data/sets"),
        ("data.root=2024", "data.root", "2024"),
        ("eval.lambda_grid=[0.5, 0.6]", "eval.lambda_grid", (0.5, 0.6)),
        ("eval.lambda_grid=[1]", "eval.lambda_grid", (1.0,)),
        ("seed=7", "seed", 7),
    ],
)
def test_override_values_of_every_type(override, key, expected):
    cfg = load_config(None, [override])
    value = functools.reduce(getattr, key.split("."), cfg)
    assert value == expected and type(value) is type(expected)


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(
        ConfigError, match=r"unknown key 'model\.mnad\.separatness'; did you mean 'model\.mnad\.separateness'\?"
    ):
        load_config(None, ["model.mnad.separatness=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'modl'; did you mean 'model'\? allowed: data, model"):
        load_config(None, ["modl.mnad.separateness=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'model\.mnda'; did you mean 'model\.mnad'\?"):
        load_config(None, ["model.mnda.width=8"])


def test_unknown_key_in_a_profile_names_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"mine\.toml: unknown key 'train\.epoch'; did you mean 'train\.epochs'"):
        load_config(path)


def test_wrong_type_names_key_type_and_value():
    with pytest.raises(ConfigError, match=r"model\.mnad\.width must be an integer; got 16\.5 \(float\)"):
        load_config(None, ["model.mnad.width=16.5"])
    with pytest.raises(ConfigError, match=r"eval\.mnad\.test_time_update must be true or false; got 'yes'"):
        load_config(None, ["eval.mnad.test_time_update=yes"])
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer; got True"):
        load_config(None, ["train.epochs=true"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.mnad.lambda_score=1.5", r"eval\.mnad\.lambda_score must be in \[0, 1\]; got 1\.5"),
        ("eval.mnad.lambda_score=-0.1", r"eval\.mnad\.lambda_score must be in \[0, 1\]"),
        ("data.salt_pepper=1", r"data\.salt_pepper must be in \[0, 1\); got 1\.0"),
        ("eval.lambda_grid=[0.5, 2]", r"eval\.lambda_grid must be in \[0, 1\]"),
        ("train.lr=0", r"train\.lr must be > 0; got 0\.0"),
        (
            "model.mnad.task=recn",
            r"model\.mnad\.task must be one of 'pred', 'recon'; got 'recn' \(str\) \(did you mean 'recon'",
        ),
        ("data.name=../ped2", r"data\.name must be a folder name \(letters, digits, '\.', '_', '-'\); got '\.\./ped2'"),
        ("train=1", r"train must be a table"),
        ("model.mnad=1", r"model\.mnad must be a table"),
        ("nonsense", r"must look like key=value"),
    ],
)
def test_bad_values_are_rejected_with_the_help(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_validation_also_guards_direct_construction_and_replace():
    with pytest.raises(ConfigError, match="lambda_score"):
        MNADEvalSettings(lambda_score=2.0)
    with pytest.raises(ConfigError, match="gamma"):
        dataclasses.replace(MNADEvalSettings(), gamma=-1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        EvalConfig(batch_size=0)


def test_the_methods_evaluation_settings_are_their_own_section_and_old_keys_say_where_they_went(tmp_path):
    cfg = load_config(None, ["eval.mnad.gamma=0.02"])
    assert cfg.method_eval is cfg.eval.mnad and cfg.method_eval.gamma == 0.02
    assert load_config(None, ["model.name=convlstm"]).method_eval is None  # no evaluation settings of its own
    with pytest.raises(ConfigError, match=r"unknown key 'eval\.gamma': it is mnad's, set eval\.mnad\.gamma"):
        load_config(None, ["eval.gamma=0.02"])
    with pytest.raises(ConfigError, match=r"eval\.mnad\.gamma is an evaluation setting of mnad, but .* memae"):
        load_config(None, ["model.name=memae", "eval.mnad.gamma=0.02"])
    old = tmp_path / "config.toml"  # a run folder written before [eval.mnad] existed
    old.write_text("[eval]\nbatch_size = 4\ngamma = 0.02\ntest_time_update = false\n")
    moved = load_config(old)
    assert (moved.eval.batch_size, moved.eval.mnad.gamma, moved.eval.mnad.test_time_update) == (4, 0.02, False)


@pytest.mark.parametrize("profile", ["paper", "synthetic"])
def test_task_tables_follow_the_task_also_from_an_override(profile):
    pred, recon = load_config(profile), load_config(profile, ["model.mnad.task=recon"])
    assert (pred.train.lr, pred.eval.mnad.lambda_score, pred.eval.mnad.gamma, pred.model.mnad.compactness) == (
        2e-4,
        0.6,
        0.01,
        0.1,
    )
    assert (
        recon.eval.mnad.lambda_score,
        recon.eval.mnad.gamma,
        recon.model.mnad.compactness,
        recon.model.mnad.separateness,
    ) == (
        0.7,
        0.015,
        0.01,
        0.01,
    )
    assert recon.train.lr == (2e-5 if profile == "paper" else 2e-4)


def test_overrides_win_over_task_tables():
    cfg = load_config(
        "paper", ["model.mnad.task=recon", "train.lr=1e-3", "model.mnad.task=pred", "eval.mnad.gamma=0.5"]
    )
    assert (cfg.model.mnad.task, cfg.train.lr, cfg.eval.mnad.lambda_score, cfg.eval.mnad.gamma) == (
        "pred",
        1e-3,
        0.6,
        0.5,
    )


def test_paper_profile_has_the_papers_training_settings():
    cfg = load_config("paper")
    assert (cfg.data.name, cfg.data.size, cfg.model.mnad.width, cfg.model.mnad.num_items) == ("ped2", 256, 64, 10)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.checkpoint_every) == (60, 4, 5)
    assert cfg.data.root is None and cfg.train.shuffle and cfg.train.drop_last


def test_task_table_for_an_unknown_task_is_an_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[task.recn.train]\nlr = 1e-3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'task\.recn'; did you mean 'task\.recon'"):
        load_config(path)


def test_profiles_resolve_by_name_or_path_and_explain_a_miss(tmp_path):
    assert tomllib.loads(resolve_profile("paper").read_text())["data"]["name"] == "ped2"
    with pytest.raises(ConfigError, match=r"unknown profile 'papr'; did you mean 'paper'\? available: paper, synth"):
        resolve_profile("papr")
    with pytest.raises(ConfigError, match="not found"):
        resolve_profile(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("[data\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_parse_override_keeps_text_for_string_fields():
    assert parse_override("data.labels = labels.npy") == ("data.labels", "labels.npy")
    assert parse_override("eval.mnad.gamma=1e-2") == ("eval.mnad.gamma", 0.01)


def test_every_setting_has_help():
    helps = settings_help()
    nested = [getattr(RunConfig().model, name) for name in ("mnad", "memae", "ae3d", "convlstm")]
    nested.append(RunConfig().eval.mnad)
    plain = [c for name, c in SECTIONS.items() if name != "model"]
    fields = sum(len(dataclasses.fields(c)) for c in [*plain, *nested]) - 1  # less the section eval.mnad itself
    assert len(helps) == fields + 2  # + seed, model.name
    assert "λ_s" in helps["model.mnad.separateness"] and "[0, 1]" in helps["eval.mnad.lambda_score"]
    assert all(text.strip() for text in helps.values())
