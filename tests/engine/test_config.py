"""Experiment configuration: validation with named fields and ranges, TOML round trips, live fields."""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reptile_engine import errors
from reptile_engine.config import (
    MAX_FILE_BYTES,
    ConfigError,
    ExperimentConfig,
    describe_range,
    field_info,
    field_type,
    get_value,
    is_live,
    iter_fields,
    live_fields,
    parse_value,
    require_live,
)

LIVE = {
    "meta.lr",
    "meta.meta_batch",
    "inner.steps",
    "inner.lr",
    "inner.batch_size",
    "inner.optimizer",
    "meta_schedule.kind",
    "inner_schedule.kind",
    "landscape.plane",
    "landscape.loss",
    "landscape.resolution",
    "landscape.span",
    "landscape.every",
    "landscape.steps",
    "landscape.freeze",
    "evaluation.every",
    "rl.updates",
    "rl.episodes",
    "rl.lr",
    "rl.actor_lr",
    "rl.critic_lr",
    "rl.entropy_coef",
    "rl.noise",
    "rl.noise_correlation",
}


def raises_config_error(data, field: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    assert info.value.field == field, str(info.value)
    return info.value


def test_defaults_validate():
    cfg = ExperimentConfig()
    assert cfg.validate() is cfg
    assert ExperimentConfig.from_dict({}) == cfg
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    # Every field documents itself and its range.
    for path, _, f in iter_fields(cfg):
        assert f.metadata["doc"], path
        assert describe_range(f), path


def test_config_error_is_a_value_error_with_details():
    err = raises_config_error({"model": {"hidden": 0}}, "model.hidden")
    assert isinstance(err, ValueError)
    assert err.value == 0
    assert "model.hidden" in str(err) and err.allowed in str(err)


@pytest.mark.parametrize(
    "cfg",
    [
        ExperimentConfig(),
        ExperimentConfig().with_updates(
            {
                "inner.lr": 0.003,
                "model.activation": "relu",
                "meta.optimizer": "adam",
                "meta_schedule.kind": "cosine",
                "seed": 2**63 - 1,
                "task.support": 7,
                "inner.batch_size": 3,
                "evaluation.steps": 0,
                "device": "auto",
            }
        ),
    ],
    ids=["defaults", "changed"],
)
def test_toml_round_trip(cfg, tmp_path):
    text = cfg.to_toml()
    again = ExperimentConfig.from_toml(text)
    assert again == cfg
    assert type(again.inner.lr) is float and type(again.seed) is int
    path = tmp_path / "experiment.toml"
    cfg.save(path)
    assert ExperimentConfig.load(path) == cfg


def test_bad_toml_and_missing_file_raise_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_toml("this is [not toml")
    assert info.value.field == "<toml>"
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.load(tmp_path / "missing.toml")
    assert info.value.field == "<file>"


def test_partial_sections_keep_other_defaults():
    cfg = ExperimentConfig.from_toml("[inner]\nlr = 0.5\n")
    assert cfg.inner.lr == 0.5
    assert cfg.inner.steps == ExperimentConfig().inner.steps
    assert cfg.meta == ExperimentConfig().meta


def test_unknown_top_level_key():
    raises_config_error({"bogus": 1}, "bogus")


def test_unknown_key_inside_section():
    raises_config_error({"inner": {"lr": 0.1, "momentum": 0.9}}, "inner.momentum")


def test_section_must_be_a_table():
    raises_config_error({"inner": 3}, "inner")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("section", "name", "allowed"),
    [
        ("inner", "lr", "[1e-06, 10]"),
        ("meta", "lr", "[0, 10]"),
        ("evaluation", "lr", "[1e-06, 10]"),
        ("inner", "adam_beta2", "[0, 0.99999]"),
        ("model", "hidden", "[1, 4096]"),
    ],
)
def test_non_finite_numbers_rejected(section, name, allowed, bad):
    err = raises_config_error({section: {name: bad}}, f"{section}.{name}")
    assert allowed in str(err)


@pytest.mark.parametrize("bad", [0, -1, -1000])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("model.hidden", "an integer in [1, 4096]"),
        ("model.depth", "an integer in [1, 16]"),
        ("task.support", "an integer in [1, 10000]"),
        ("task.query", "an integer in [1, 10000]"),
        ("inner.steps", "an integer in [1, 1000]"),
        ("inner.batch_size", "an integer in [1, 10000]"),
        ("meta.meta_batch", "an integer in [1, 4096]"),
        ("meta.iterations", "an integer in [1, 1e+09]"),
        ("evaluation.tasks", "an integer in [1, 100000]"),
        ("evaluation.every", "an integer in [1, 1e+06]"),
    ],
)
def test_zero_and_negative_sizes_rejected(path, allowed, bad):
    section, name = path.split(".")
    err = raises_config_error({section: {name: bad}}, path)
    assert allowed in str(err)
    assert err.value == bad


@pytest.mark.parametrize("path", ["inner.lr", "meta.lr"])
def test_negative_rates_rejected(path):
    section, name = path.split(".")
    err = raises_config_error({section: {name: -0.1}}, path)
    assert "a finite number in" in str(err)


def test_values_above_the_range_rejected():
    err = raises_config_error({"model": {"hidden": 4097}}, "model.hidden")
    assert "[1, 4096]" in str(err)
    raises_config_error({"inner": {"lr": 10.5}}, "inner.lr")


@pytest.mark.parametrize("path", ["model.hidden", "inner.steps", "meta.iterations", "seed", "threads"])
@pytest.mark.parametrize("flag", [True, False])
def test_bools_rejected_for_ints(path, flag):
    section, _, name = path.rpartition(".")
    data = {section: {name: flag}} if section else {name: flag}
    raises_config_error(data, path)


def test_bools_rejected_for_floats_and_strings():
    raises_config_error({"inner": {"lr": True}}, "inner.lr")
    raises_config_error({"task": {"name": True}}, "task.name")


def test_numeric_coercion():
    cfg = ExperimentConfig.from_dict({"model": {"hidden": 32.0}, "inner": {"lr": 1}})
    assert cfg.model.hidden == 32 and type(cfg.model.hidden) is int
    assert cfg.inner.lr == 1.0 and type(cfg.inner.lr) is float
    raises_config_error({"model": {"hidden": 32.5}}, "model.hidden")
    raises_config_error({"model": {"hidden": "32"}}, "model.hidden")
    raises_config_error({"inner": {"lr": None}}, "inner.lr")
    raises_config_error({"inner": {"lr": [0.1]}}, "inner.lr")


def test_choices_rejected_with_the_allowed_values():
    err = raises_config_error({"inner": {"optimizer": "rmsprop"}}, "inner.optimizer")
    assert "one of sgd, adam" in str(err)
    raises_config_error({"model": {"activation": 3}}, "model.activation")
    raises_config_error({"meta_schedule": {"kind": "exponential"}}, "meta_schedule.kind")


def test_inner_batch_larger_than_support_rejected():
    assert (
        ExperimentConfig.from_dict({"task": {"support": 5}, "inner": {"batch_size": 5}}).inner.batch_size == 5
    )
    err = raises_config_error({"task": {"support": 5}, "inner": {"batch_size": 6}}, "inner.batch_size")
    assert "task.support" in str(err)


def test_unknown_task_name_rejected():
    err = raises_config_error({"task": {"name": "no-such-task"}}, "task.name")
    assert "sine" in str(err)  # the message lists what is available
    raises_config_error({"task": {"name": "no_such_module_xyz:Tasks"}}, "task.name")
    raises_config_error({"task": {"name": "reptile_engine.tasks.sine:NoSuchClass"}}, "task.name")
    raises_config_error({"task": {"name": ""}}, "task.name")


def test_with_updates_dotted_paths():
    base = ExperimentConfig()
    cfg = base.with_updates({"inner.lr": 0.01, "meta_schedule.kind": "cosine", "seed": 5})
    assert (cfg.inner.lr, cfg.meta_schedule.kind, cfg.seed) == (0.01, "cosine", 5)
    assert base.inner.lr == 0.02  # frozen original untouched
    assert cfg.inner.steps == base.inner.steps
    # Updates are validated, including cross-field rules.
    with pytest.raises(ConfigError) as info:
        base.with_updates({"inner.lr": 0.0})
    assert info.value.field == "inner.lr"
    with pytest.raises(ConfigError) as info:
        base.with_updates({"inner.batch_size": base.task.support + 1})
    assert info.value.field == "inner.batch_size"


@pytest.mark.parametrize(
    "path", ["inner.momentum", "nosection.lr", "inner.lr.value", "bogus", "model.hidden.x"]
)
def test_with_updates_rejects_unknown_paths(path):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig().with_updates({path: 1})
    assert info.value.field.split(".")[0] in path


def test_live_fields_are_exactly_the_documented_ones():
    paths = [path for path, _, _ in live_fields(ExperimentConfig())]
    assert len(paths) == len(set(paths))
    assert set(paths) == LIVE
    for path in LIVE:
        assert field_info(path).metadata["live"] is True


def test_field_info_rejects_unknown_paths():
    assert field_info("inner.lr").name == "lr"
    with pytest.raises(ConfigError):
        field_info("inner.nope")


def test_config_error_is_the_one_from_errors():
    assert ConfigError is errors.ConfigError


def test_get_value_reads_every_field_by_its_dotted_path():
    cfg = ExperimentConfig().with_updates({"inner.lr": 0.01, "seed": 7})
    assert get_value(cfg, "inner.lr") == 0.01 and get_value(cfg, "seed") == 7
    assert get_value(cfg, "inner") is cfg.inner
    for path, value, _ in iter_fields(cfg):
        assert get_value(cfg, path) == value, path
    for path in ("inner.nope", "nosection.lr", "inner.lr.value", "validate", "kind"):
        with pytest.raises(ConfigError) as info:
            get_value(cfg, path)
        assert info.value.field == path


def test_field_type_is_the_python_type_of_every_field():
    assert (field_type("inner.lr"), field_type("meta.meta_batch"), field_type("task.name"),
            field_type("landscape.freeze")) == (float, int, str, bool)
    for path, value, _ in iter_fields(ExperimentConfig()):
        assert type(value) is field_type(path), path
    with pytest.raises(ConfigError):
        field_type("inner.nope")


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [("inner.lr", "0.5", 0.5), ("inner.lr", "1", 1.0), ("inner.steps", "12", 12),
     ("inner.optimizer", "adam", "adam"), ("landscape.freeze", "TRUE", True), ("landscape.freeze", "0", False),
     ("task.name", "point-nav-2d", "point-nav-2d")],
)
def test_parse_value_gives_the_field_type(path, text, expected):
    value = parse_value(path, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("path", "text", "allowed"),
    [("inner.lr", "fast", "a finite number in [1e-06, 10]"), ("inner.lr", "nan", "a finite number"),
     ("inner.lr", "-inf", "a finite number"), ("inner.steps", "2.5", "an integer in [1, 1000]"),
     ("inner.steps", "0", "an integer in [1, 1000]"), ("inner.optimizer", "rmsprop", "one of sgd, adam"),
     ("landscape.freeze", "maybe", "true or false"), ("task.name", "", "must not be empty")],
)
def test_parse_value_names_the_field_and_its_range(path, text, allowed):
    with pytest.raises(ConfigError) as info:
        parse_value(path, text)
    assert info.value.field == path and allowed in info.value.allowed


def test_parse_value_rejects_unknown_paths():
    with pytest.raises(ConfigError) as info:
        parse_value("inner.momentum", "0.9")
    assert info.value.field == "inner.momentum"


def test_is_live_matches_the_metadata():
    for path, _, _ in iter_fields(ExperimentConfig()):
        assert is_live(path) is (path in LIVE), path
    with pytest.raises(ConfigError):
        is_live("inner.nope")


def test_require_live_names_the_first_unknown_or_fixed_field():
    require_live({"inner.lr": 0.01, "meta.lr": 0.5})
    require_live({})
    with pytest.raises(ConfigError) as info:
        require_live({"inner.lr": 0.01, "model.hidden": 8, "seed": 1})
    assert (info.value.field, info.value.value) == ("model.hidden", 8)
    assert "cannot change during a run" in info.value.allowed
    with pytest.raises(ConfigError) as info:
        require_live({"inner.nope": 1})
    assert (info.value.field, info.value.allowed) == ("inner.nope", "unknown field")
    with pytest.raises(ConfigError) as info:
        require_live({"seed": 1}, allowed="can change only while stopped")
    assert info.value.allowed == "can change only while stopped"


def test_with_updates_keeps_the_other_fields_of_each_section():
    base = ExperimentConfig().with_updates({"meta_schedule.warmup": 10, "inner.steps": 3})
    cfg = base.with_updates({"meta_schedule.gamma": 0.25})
    assert cfg.meta_schedule == dataclasses.replace(base.meta_schedule, gamma=0.25)
    assert cfg.meta_schedule.kind == "linear" and cfg.inner.steps == 3


# --- Inputs that once raised something other than ConfigError. ---


@pytest.mark.parametrize(
    "data",
    [{"seed": 10**400}, {"inner": {"lr": 10**400}}, {"model": {"hidden": -(10**400)}}],
    ids=["int-field", "float-field", "negative"],
)
def test_huge_integers_raise_config_error(data):
    with pytest.raises(ConfigError):
        ExperimentConfig.from_dict(data)


def test_relative_module_task_name_raises_config_error():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict({"task": {"name": ".relative:Tasks"}})
    assert info.value.field == "task.name"


# --- Property: from_dict never fails with anything but ConfigError. ---

_SECTIONS = {
    f.name: [g.name for g in dataclasses.fields(f.default_factory())]
    for f in dataclasses.fields(ExperimentConfig)
    if f.default_factory is not dataclasses.MISSING
}
_TOP = [f.name for f in dataclasses.fields(ExperimentConfig)]
_NAMES = sorted(set(_TOP) | {n for names in _SECTIONS.values() for n in names})

# Text never contains ":" so that a random task name cannot import an arbitrary installed module; the
# module:attr path is covered by the explicit tests above and in test_tasks.py. Integers stay within the
# float range (larger ones have their own test above).
_text = st.text(alphabet=st.characters(exclude_characters=":", exclude_categories=("Cs",)), max_size=12)
_key = st.one_of(st.sampled_from(_NAMES), _text)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-12, 0.5, 1.0, 10.0, 1e308, math.nan, math.inf, -math.inf]),
    _text,
    st.sampled_from(
        [
            "sine",
            "tanh",
            "relu",
            "sgd",
            "adam",
            "auto",
            "matmul",
            "func",
            "cpu",
            "cuda",
            "linear",
            "cosine",
            "step",
            "constant",
            "reptile_engine.tasks.sine:SineTasks",
        ]
    ),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key, inner, max_size=4),
    max_leaves=8,
)
_section_dict = st.sampled_from(sorted(_SECTIONS)).flatmap(
    lambda s: st.tuples(
        st.just(s), st.dictionaries(st.one_of(st.sampled_from(_SECTIONS[s]), _key), _scalar, max_size=5)
    )
)
_near_valid = st.lists(_section_dict, max_size=4).map(dict)
_anything = st.dictionaries(_key, _value, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_near_valid, _anything))
def test_from_dict_gives_a_valid_config_or_config_error(data):
    try:
        cfg = ExperimentConfig.from_dict(data)
    except ConfigError as exc:
        assert isinstance(exc.field, str)
        return
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.validate() is cfg
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert ExperimentConfig.from_toml(cfg.to_toml()) == cfg


def test_bool_fields_accept_only_bools():
    assert ExperimentConfig().with_updates({"landscape.freeze": True}).landscape.freeze is True
    for bad in (1, "yes", None, 0.0):
        with pytest.raises(ConfigError) as info:
            ExperimentConfig().with_updates({"landscape.freeze": bad})
        assert info.value.field == "landscape.freeze" and "true or false" in str(info.value)
    text = ExperimentConfig().with_updates({"landscape.freeze": True}).to_toml()
    assert ExperimentConfig.from_toml(text).landscape.freeze is True


# --- Parse failures of any depth or size are a ConfigError. ---

DEEP = 5_000


@pytest.mark.parametrize(
    "text",
    [
        "[task]\nname = " + "[" * DEEP + "]" * DEEP,
        "seed = " + "{ a = " * DEEP + "1" + " }" * DEEP,
        "[task]\nname = " + "[" * DEEP,
    ],
    ids=["deep-array", "deep-inline-table", "unclosed-deep-array"],
)
def test_deeply_nested_toml_raises_config_error(text):
    with pytest.raises(ConfigError):
        ExperimentConfig.from_toml(text)


def test_deeply_nested_values_raise_a_short_config_error():
    deep: dict = {}
    node = deep
    for _ in range(DEEP):
        node["a"] = {}
        node = node["a"]
    for data in ({"task": {"name": deep}}, {"task": deep}, {"bogus": deep}):
        with pytest.raises(ConfigError) as info:
            ExperimentConfig.from_dict(data)
        assert len(str(info.value)) < 500


def test_a_long_value_gives_a_short_message():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict({"task": {"name": "x" * 1_000_000}})
    assert info.value.field == "task.name" and len(str(info.value)) < 1000


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_loading_a_fifo_raises_config_error_without_blocking(tmp_path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        ExperimentConfig.load(fifo)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_loading_a_device_raises_config_error_unread():
    with pytest.raises(ConfigError, match="not a regular file"):
        ExperimentConfig.load("/dev/zero")


def test_loading_an_oversized_file_raises_config_error(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        ExperimentConfig.load(big)
    small = tmp_path / "small.toml"
    ExperimentConfig().with_updates({"seed": 3}).save(small)
    assert ExperimentConfig.load(small).seed == 3
