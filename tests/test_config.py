import dataclasses
import subprocess
import sys
import tomllib
import typing

import pytest

from repro.config import (
    SECTIONS,
    ConfigError,
    EvalConfig,
    LossConfig,
    RunConfig,
    config_hash,
    from_dict,
    load_config,
    parse_override,
    resolve_profile,
    settings_help,
    to_dict,
    to_toml,
    with_overrides,
)


def test_toml_round_trip_is_exact(tmp_path):
    cfg = load_config("paper", ["model.skips=true", "exec.threads=2", "data.root=/data", "eval.lambda_grid=[0.5]"])
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
        return value + 1
    return value[:1]


def test_hash_changes_with_every_field_except_how_a_run_executes():
    cfg = load_config()
    base = config_hash(cfg)
    for name, cls in SECTIONS.items():
        section = getattr(cfg, name)
        for f in dataclasses.fields(section):
            new = _other_value(cls, f.name, getattr(section, f.name))
            other = dataclasses.replace(cfg, **{name: dataclasses.replace(section, **{f.name: new})})
            unchanged = name == "exec" and f.name != "precision"  # precision changes the numbers
            assert (config_hash(other) == base) == unchanged, f"{name}.{f.name}"
    assert config_hash(dataclasses.replace(cfg, seed=1)) != base


def test_int_widens_to_float_so_the_hash_does_not_depend_on_spelling():
    assert config_hash(with_overrides(load_config(), ["loss.separateness=0"])) == config_hash(
        with_overrides(load_config(), ["loss.separateness=0.0"]))
    assert LossConfig(separateness=0).separateness == 0.0 and isinstance(LossConfig(separateness=0).separateness, float)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("loss.separateness=0", "loss.separateness", 0.0),
        ("train.epochs=3", "train.epochs", 3),
        ("eval.test_time_update=false", "eval.test_time_update", False),
        ("model.skips=true", "model.skips", True),
        ("model.skips=none", "model.skips", None),
        ("exec.threads=none", "exec.threads", None),
        ("model.task=recon", "model.task", "recon"),
        ("model.task='recon'", "model.task", "recon"),
        ("data.root=/data/sets", "data.root", "/data/sets"),
        ("data.root=2024", "data.root", "2024"),
        ("eval.lambda_grid=[0.5, 0.6]", "eval.lambda_grid", (0.5, 0.6)),
        ("eval.lambda_grid=[1]", "eval.lambda_grid", (1.0,)),
        ("seed=7", "seed", 7),
    ],
)
def test_override_values_of_every_type(override, key, expected):
    cfg = load_config(None, [override])
    section, _, name = key.rpartition(".")
    value = getattr(getattr(cfg, section) if section else cfg, name)
    assert value == expected and type(value) is type(expected)


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown key 'loss\.separatness'; did you mean 'loss\.separateness'\?"):
        load_config(None, ["loss.separatness=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'lose'; did you mean 'loss'\? allowed: data, model"):
        load_config(None, ["lose.separateness=0"])


def test_unknown_key_in_a_profile_names_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"mine\.toml: unknown key 'train\.epoch'; did you mean 'train\.epochs'"):
        load_config(path)


def test_wrong_type_names_key_type_and_value():
    with pytest.raises(ConfigError, match=r"model\.width must be an integer; got 16\.5 \(float\)"):
        load_config(None, ["model.width=16.5"])
    with pytest.raises(ConfigError, match=r"eval\.test_time_update must be true or false; got 'yes'"):
        load_config(None, ["eval.test_time_update=yes"])
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer; got True"):
        load_config(None, ["train.epochs=true"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.lambda_score=1.5", r"eval\.lambda_score must be in \[0, 1\]; got 1\.5"),
        ("eval.lambda_score=-0.1", r"eval\.lambda_score must be in \[0, 1\]"),
        ("data.salt_pepper=1", r"data\.salt_pepper must be in \[0, 1\); got 1\.0"),
        ("eval.lambda_grid=[0.5, 2]", r"eval\.lambda_grid must be in \[0, 1\]"),
        ("train.lr=0", r"train\.lr must be > 0; got 0\.0"),
        ("model.task=recn", r"model\.task must be one of 'pred', 'recon'; got 'recn' \(str\) \(did you mean 'recon'"),
        ("data.name=ped3", r"data\.name must be one of 'synthetic', 'ped2', 'avenue', 'shanghaitech'"),
        ("loss=1", r"loss must be a table"),
        ("nonsense", r"must look like key=value"),
    ],
)
def test_bad_values_are_rejected_with_the_help(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_validation_also_guards_direct_construction_and_replace():
    with pytest.raises(ConfigError, match="lambda_score"):
        EvalConfig(lambda_score=2.0)
    with pytest.raises(ConfigError, match="gamma"):
        dataclasses.replace(EvalConfig(), gamma=-1.0)


@pytest.mark.parametrize("profile", ["paper", "synthetic"])
def test_task_tables_follow_the_task_also_from_an_override(profile):
    pred, recon = load_config(profile), load_config(profile, ["model.task=recon"])
    assert (pred.train.lr, pred.eval.lambda_score, pred.eval.gamma, pred.loss.compactness) == (
        2e-4, 0.6, 0.01, 0.1)
    assert (recon.eval.lambda_score, recon.eval.gamma, recon.loss.compactness, recon.loss.separateness) == (
        0.7, 0.015, 0.01, 0.01)
    assert recon.train.lr == (2e-5 if profile == "paper" else 2e-4)


def test_overrides_win_over_task_tables():
    cfg = load_config("paper", ["model.task=recon", "train.lr=1e-3", "model.task=pred", "eval.gamma=0.5"])
    assert (cfg.model.task, cfg.train.lr, cfg.eval.lambda_score, cfg.eval.gamma) == ("pred", 1e-3, 0.6, 0.5)


def test_paper_profile_is_spec_section_4():
    cfg = load_config("paper")
    assert (cfg.data.name, cfg.data.size, cfg.model.width, cfg.model.num_items) == ("ped2", 256, 64, 10)
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


def test_with_overrides_accepts_mappings_and_strings():
    cfg = load_config()
    assert with_overrides(cfg, {"loss.separateness": 0, "model.skips": None}) == with_overrides(
        cfg, ["loss.separateness=0", "model.skips=none"])
    assert with_overrides(cfg, {"loss.separateness": 0}).loss.separateness == 0.0


def test_parse_override_keeps_text_for_string_fields():
    assert parse_override("data.labels = labels.npy") == ("data.labels", "labels.npy")
    assert parse_override("eval.gamma=1e-2") == ("eval.gamma", 0.01)


def test_every_setting_has_help():
    helps = settings_help()
    assert len(helps) == sum(len(dataclasses.fields(c)) for c in SECTIONS.values()) + 1
    assert "λ_s" in helps["loss.separateness"] and "[0, 1]" in helps["eval.lambda_score"]
    assert all(text.strip() for text in helps.values())
