"""credo.config: typed config dataclasses from layered YAML files and key=value overrides."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from credo.config import (
    ConfigError,
    Range,
    describe,
    field_docs,
    from_dict,
    load_config,
    parse_override,
    save_config,
    to_dict,
)


@dataclass(frozen=True)
class Net:
    hidden: tuple[int, ...] = (64,)  # layer sizes
    activation: Literal["relu", "tanh"] = "relu"  # nonlinearity
    dropout: float = 0.0  # dropout rate


@dataclass(frozen=True)
class Train:
    algo: str = "qmix"  # which learner
    env: str = "lbf:Foraging-8x8-2p-3f-v3"  # env key
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments for the env
    total_env_steps: int = 2_000_000  # training budget
    lr: float = 5e-4  # Adam learning rate
    double_q: bool = True  # double Q-learning targets
    target_update: Literal["hard", "soft"] = "hard"  # "hard" or "soft"
    tau: float | None = None  # soft update rate (None = not used)
    hidden: tuple[int, ...] = (64,)  # layer sizes
    mixer: str | None = "qmix"  # None = no mixer
    grid: tuple[int, int] = (8, 8)  # grid height and width
    seeds: list[int] = field(
        default_factory=lambda: [0, 1],
    )  # seeds to run
    weights: dict[str, float] = field(default_factory=dict, metadata={"doc": "per-agent loss weights"})
    tags: dict[str, Any] = field(default_factory=dict)
    eps: Optional[float] = 0.05  # noqa: UP045 - checks the typing.Optional spelling
    out: Path = Path("runs")  # output folder
    net: Net = field(default_factory=Net)  # agent network
    anything: Annotated[float, Range(finite=False)] = 0.0  # any float: nan and inf allowed


@dataclass(frozen=True)
class Wide:
    """A config whose nested default differs from the nested class's defaults."""

    net: Net = Net(hidden=(128, 128), activation="tanh")  # wide network
    steps: int = 10  # steps


@dataclass(frozen=True)
class Checked:
    lo: float = 0.0  # lower bound
    hi: float = 1.0  # upper bound

    def __post_init__(self):
        if self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) must not exceed hi ({self.hi})")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def cfgdir(tmp_path, monkeypatch):
    """A temporary working directory with a configs/ folder, so messages name configs/x.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    return tmp_path


# --- from_dict and the type rules ------------------------------------------------------------


def test_empty_dict_gives_the_defaults():
    assert from_dict(Train, {}) == Train()
    assert load_config(Train) == Train()


def test_int_accepts_integral_floats_and_rejects_fractions_and_bools():
    cfg = from_dict(Train, {"total_env_steps": 2e6})
    assert cfg.total_env_steps == 2_000_000 and type(cfg.total_env_steps) is int
    with pytest.raises(ConfigError) as err:
        from_dict(Train, {"total_env_steps": 2.5}, source="configs/x.yaml")
    msg = str(err.value)
    for part in (
        "configs/x.yaml",
        "total_env_steps",
        "training budget",
        "expects int",
        "2.5",
        "whole number",
    ):
        assert part in msg
    with pytest.raises(ConfigError, match="not true/false"):
        from_dict(Train, {"total_env_steps": True})
    with pytest.raises(ConfigError, match="expects int"):
        from_dict(Train, {"total_env_steps": "2e6"})


def test_float_accepts_ints_as_floats_and_rejects_bools_and_strings():
    cfg = from_dict(Train, {"lr": 1})
    assert cfg.lr == 1.0 and type(cfg.lr) is float
    for bad in (True, "1e-3", [1e-3]):
        with pytest.raises(ConfigError, match="field 'lr' .*expects float"):
            from_dict(Train, {"lr": bad})


def test_bool_is_strict():
    assert from_dict(Train, {"double_q": False}).double_q is False
    for bad in (1, 0, "true", None):
        with pytest.raises(ConfigError, match="expects bool.*write true or false"):
            from_dict(Train, {"double_q": bad})
    with pytest.raises(ConfigError) as err:
        load_config(Train, overrides=["double_q=1"])
    assert str(err.value).startswith(
        "--set: field 'double_q' (double Q-learning targets) expects bool, got 1"
    )


def test_str_rejects_non_strings_with_a_hint():
    with pytest.raises(ConfigError, match="expects str, got 123 .*quotes"):
        from_dict(Train, {"algo": 123})


def test_optional_accepts_none_or_the_type():
    assert from_dict(Train, {"tau": None}).tau is None
    assert from_dict(Train, {"tau": 1}).tau == 1.0
    assert from_dict(Train, {"mixer": None}).mixer is None
    assert from_dict(Train, {"eps": None}).eps is None
    with pytest.raises(ConfigError, match=r"field 'tau' .*expects float \| None, got 'x'"):
        from_dict(Train, {"tau": "x"})
    with pytest.raises(ConfigError, match=r"expects Optional\[float\]"):
        from_dict(Train, {"eps": "x"})


def test_literal_lists_the_allowed_values():
    assert from_dict(Train, {"target_update": "soft"}).target_update == "soft"
    with pytest.raises(ConfigError) as err:
        from_dict(Train, {"target_update": "medium"})
    assert "must be one of 'hard', 'soft'" in str(err.value)
    assert 'Literal["hard", "soft"]' in str(err.value)  # the annotation as written


def test_tuples_variable_and_fixed_length():
    cfg = from_dict(Train, {"hidden": [64, 64], "grid": [5, 7.0]})
    assert cfg.hidden == (64, 64) and cfg.grid == (5, 7) and type(cfg.grid[1]) is int
    assert from_dict(Train, {"hidden": []}).hidden == ()
    with pytest.raises(ConfigError, match=r"expects tuple\[int, \.\.\.\].*item 1 is 'a' \(str\), not int"):
        from_dict(Train, {"hidden": [64, "a"]})
    with pytest.raises(ConfigError, match="give a list"):
        from_dict(Train, {"hidden": 64})
    with pytest.raises(ConfigError, match="needs exactly 2 items, got 3"):
        from_dict(Train, {"grid": [1, 2, 3]})


def test_lists_and_paths():
    cfg = from_dict(Train, {"seeds": (3, 4), "out": "runs/a"})
    assert cfg.seeds == [3, 4] and cfg.out == Path("runs/a")
    with pytest.raises(ConfigError, match="item 0 is 1.5"):
        from_dict(Train, {"seeds": [1.5]})


def test_dicts_check_keys_and_values_unless_any():
    cfg = from_dict(
        Train, {"env_kwargs": {"sight": 2, "coop": True}, "weights": {"a": 1}, "tags": {"x": [1]}}
    )
    assert cfg.env_kwargs == {"sight": 2, "coop": True}
    assert cfg.weights == {"a": 1.0} and type(cfg.weights["a"]) is float
    with pytest.raises(ConfigError, match="value of 'a' is 'heavy'"):
        from_dict(Train, {"weights": {"a": "heavy"}})
    with pytest.raises(ConfigError, match="key 1 is not str"):
        from_dict(Train, {"weights": {1: 1.0}})
    with pytest.raises(ConfigError, match="give a mapping"):
        from_dict(Train, {"env_kwargs": [1, 2]})


def test_nested_sections_are_checked_with_dotted_paths():
    cfg = from_dict(Train, {"net": {"hidden": [32, 32]}})
    assert cfg.net == Net(hidden=(32, 32))
    assert from_dict(Train, {"net": Net(dropout=0.5)}).net.dropout == 0.5
    with pytest.raises(ConfigError, match=r"field 'net.hidden' \(layer sizes\) expects tuple"):
        from_dict(Train, {"net": {"hidden": "big"}})
    with pytest.raises(ConfigError, match=r"unknown field 'net.hiden'. Did you mean 'net.hidden'\?"):
        from_dict(Train, {"net": {"hiden": [1]}})
    with pytest.raises(
        ConfigError,
        match=r"field 'net' \(agent network\) expects Net, got 3 \(int\): give a mapping of its fields",
    ):
        from_dict(Train, {"net": 3})


def test_nested_section_keeps_the_parents_default_for_fields_it_omits():
    cfg = from_dict(Wide, {"net": {"dropout": 0.1}})
    assert cfg.net == Net(hidden=(128, 128), activation="tanh", dropout=0.1)


def test_unknown_field_suggests_the_nearest_names():
    with pytest.raises(ConfigError) as err:
        from_dict(Train, {"learning_rate": 1e-3}, source="configs/qmix.yaml")
    assert str(err.value) == "configs/qmix.yaml: unknown field 'learning_rate'. Did you mean 'lr'?"
    assert err.value.field == "learning_rate" and err.value.source == "configs/qmix.yaml"
    with pytest.raises(ConfigError, match="Did you mean 'double_q'"):
        from_dict(Train, {"double-q": True})
    with pytest.raises(ConfigError, match="Did you mean 'total_env_steps'"):
        from_dict(Train, {"total_steps": 1})
    with pytest.raises(ConfigError, match="The fields are: algo, env, "):
        from_dict(Train, {"zzzzzz": 1})


def test_post_init_errors_become_config_errors():
    with pytest.raises(ConfigError, match=r"^--set: Checked: lo \(2.0\) must not exceed hi"):
        load_config(Checked, overrides=["lo=2"])


def test_non_mapping_data_and_non_dataclass_are_rejected():
    with pytest.raises(ConfigError, match="must be a mapping"):
        from_dict(Train, [1, 2])
    with pytest.raises(TypeError):
        from_dict(dict, {})


# --- overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lr=1e-3", 1e-3),
        ("lr=2e6", 2e6),
        ("lr=5E-4", 5e-4),
        ("lr=-1.5e+3", -1500.0),
        ("lr=.5", 0.5),
        ("lr=1.0", 1.0),
        ("lr=1_000", 1000),
        ("lr=3", 3),
    ],
)
def test_override_numbers_including_scientific_notation(text, expected):
    key, value = parse_override(text)
    assert key == "lr" and value == expected and type(value) is type(expected)


def test_override_values_are_yaml():
    assert parse_override("double_q=false") == ("double_q", False)
    assert parse_override("hidden=[64,64]") == ("hidden", [64, 64])
    assert parse_override("mixer=null") == ("mixer", None)
    assert parse_override("env_kwargs={sight: 2}") == ("env_kwargs", {"sight": 2})
    assert parse_override(" net.hidden = [32] ") == ("net.hidden", [32])
    assert parse_override("env=lbf:Foraging-8x8-2p-3f-v3") == ("env", "lbf:Foraging-8x8-2p-3f-v3")
    assert parse_override("algo=a=b") == ("algo", "a=b")
    assert parse_override("flag=yes") == ("flag", "yes")  # YAML 1.2: only true/false are bools


@pytest.mark.parametrize("text", ["lr", "=1e-3", " =1", "net..hidden=1", ".lr=1", "my lr=1"])
def test_malformed_overrides_show_the_right_form(text):
    with pytest.raises(ConfigError, match="expected key=value, for example lr=1e-3"):
        parse_override(text)


def test_override_with_bad_yaml():
    with pytest.raises(ConfigError, match="cannot read the value of 'hidden'"):
        parse_override("hidden=[64,")


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_override_reads_back_any_float_repr(x):
    key, value = parse_override(f"lr={x!r}")
    assert type(value) is float and value == x
    assert load_config(Train, overrides=[f"lr={x!r}"]).lr == x


def test_overrides_of_the_wrong_type_fall_back_to_their_text_for_strings():
    cfg = load_config(Train, overrides=["algo=2024", "env=1e3", "mixer=null", "tags.x=yes"])
    assert cfg.algo == "2024" and cfg.env == "1e3" and cfg.mixer is None and cfg.tags == {"x": "yes"}
    with pytest.raises(ConfigError, match="expects float"):
        load_config(Train, overrides=["lr=abc"])


def test_dotted_overrides_set_nested_fields():
    cfg = load_config(Train, overrides=["net.hidden=[32]", "net.activation=tanh", "env_kwargs.sight=2"])
    assert cfg.net == Net(hidden=(32,), activation="tanh") and cfg.env_kwargs == {"sight": 2}
    with pytest.raises(ConfigError, match=r"^--set: unknown field 'net.hiden'. Did you mean 'net.hidden'\?"):
        load_config(Train, overrides=["net.hiden=[32]"])


# --- files, layering and provenance ----------------------------------------------------------


def test_layers_merge_in_order(cfgdir):
    write(
        cfgdir / "configs/a.yaml",
        "lr: 1e-3\nhidden: [32, 32]\nenv_kwargs: {sight: 2, coop: true}\nnet:\n  hidden: [16]\n",
    )
    write(cfgdir / "configs/b.yaml", "lr: 2e-3\nenv_kwargs:\n  sight: 3\nnet:\n  dropout: 0.5\n")
    cfg = load_config(
        Train,
        ["configs/a.yaml", Path("configs/b.yaml")],
        ["env_kwargs={players: 2}", "hidden=[8]"],
        base={"algo": "vdn", "lr": 1.0, "env_kwargs": {"base_key": 1}},
    )
    assert cfg.algo == "vdn" and cfg.lr == 2e-3 and cfg.hidden == (8,)
    assert cfg.env_kwargs == {"base_key": 1, "sight": 3, "coop": True, "players": 2}
    assert cfg.net == Net(hidden=(16,), dropout=0.5)


def test_a_file_with_integral_steps_in_scientific_notation(cfgdir):
    write(cfgdir / "configs/x.yaml", "total_env_steps: 2e6\nlr: 5E-4\n")
    cfg = load_config(Train, ["configs/x.yaml"])
    assert cfg.total_env_steps == 2_000_000 and type(cfg.total_env_steps) is int and cfg.lr == 5e-4


def test_errors_name_the_file_and_line_or_set(cfgdir):
    write(cfgdir / "configs/x.yaml", "algo: qmix\nlearning_rate: 1e-3\n")
    with pytest.raises(ConfigError) as err:
        load_config(Train, ["configs/x.yaml"])
    assert str(err.value) == "configs/x.yaml:2: unknown field 'learning_rate'. Did you mean 'lr'?"

    write(cfgdir / "configs/y.yaml", "double_q: yes\n")
    with pytest.raises(ConfigError, match=r"^configs/y.yaml:1: field 'double_q' .*got 'yes' \(str\)"):
        load_config(Train, ["configs/y.yaml"])

    write(cfgdir / "configs/z.yaml", "lr: 1e-3\ntotal_env_steps: 2.5\n")
    with pytest.raises(ConfigError, match=r"^configs/z.yaml:2: field 'total_env_steps'"):
        load_config(Train, ["configs/z.yaml"])
    # the same bad value, now replaced by a later layer, and a bad one given on the command line
    assert load_config(Train, ["configs/z.yaml"], ["total_env_steps=10"]).total_env_steps == 10
    with pytest.raises(ConfigError, match=r"^--set: field 'lr'"):
        load_config(Train, ["configs/z.yaml"], ["total_env_steps=10", "lr=fast"])


def test_nested_errors_name_the_layer_of_the_offending_leaf(cfgdir):
    write(cfgdir / "configs/a.yaml", "net:\n  hidden: [32]\n  activation: relu\n")
    write(cfgdir / "configs/b.yaml", "env_kwargs: {}\nnet:\n  activation: gelu\n")
    with pytest.raises(
        ConfigError, match=r"^configs/b.yaml:3: field 'net.activation' .*one of 'relu', 'tanh'"
    ):
        load_config(Train, ["configs/a.yaml", "configs/b.yaml"])
    with pytest.raises(ConfigError, match=r"^base: field 'weights' .*value of 'a' is 'x'"):
        load_config(Train, ["configs/a.yaml"], base={"weights": {"a": "x"}})


def test_missing_file_and_near_names(cfgdir):
    write(cfgdir / "configs/qmix.yaml", "lr: 1e-3\n")
    with pytest.raises(
        ConfigError, match=r"config file not found: configs/qmx.yaml. Did you mean configs/qmix.yaml\?"
    ):
        load_config(Train, ["configs/qmx.yaml"])
    with pytest.raises(ConfigError, match=r"Did you mean configs/qmix.yaml\?"):
        load_config(Train, ["configs/qmix"])
    with pytest.raises(ConfigError, match="not a file"):
        load_config(Train, ["configs"])


def test_yaml_syntax_error_names_file_and_line(cfgdir):
    write(cfgdir / "configs/bad.yaml", "lr: 1e-3\nhidden: [64, 64\nalgo: qmix\n")
    with pytest.raises(ConfigError, match=r"^configs/bad.yaml:\d+:\d+: invalid YAML"):
        load_config(Train, ["configs/bad.yaml"])
    write(cfgdir / "configs/dup.yaml", "lr: 1e-3\nalgo: a\nlr: 2e-3\n")
    with pytest.raises(ConfigError, match=r"^configs/dup.yaml:3:1: invalid YAML: .*duplicate key 'lr'"):
        load_config(Train, ["configs/dup.yaml"])


def test_top_level_must_be_a_mapping_but_may_be_empty(cfgdir):
    write(cfgdir / "configs/list.yaml", "- lr: 1e-3\n")
    with pytest.raises(ConfigError, match="configs/list.yaml: the top level must be a mapping"):
        load_config(Train, ["configs/list.yaml"])
    write(cfgdir / "configs/empty.yaml", "# nothing yet\n")
    assert load_config(Train, ["configs/empty.yaml"]) == Train()


def test_a_single_path_or_override_string_is_accepted(cfgdir):
    write(cfgdir / "configs/a.yaml", "lr: 1e-3\n")
    assert load_config(Train, "configs/a.yaml", "algo=vdn") == Train(lr=1e-3, algo="vdn")


def test_overrides_are_checked_before_files_are_read():
    with pytest.raises(ConfigError, match="has no '='"):
        load_config(Train, ["does/not/exist.yaml"], ["lr"])


def test_loader_does_not_change_pyyaml_for_others():
    assert yaml.safe_load("a: 1e-3\nb: yes") == {"a": "1e-3", "b": True}


# --- output ----------------------------------------------------------------------------------


def test_to_dict_is_plain_data():
    data = to_dict(Train(hidden=(1, 2), net=Net(hidden=(3,))))
    assert data["hidden"] == [1, 2] and data["net"] == {"hidden": [3], "activation": "relu", "dropout": 0.0}
    assert data["out"] == "runs" and list(data) == [f.name for f in dataclasses.fields(Train)]
    assert from_dict(Train, data) == Train(hidden=(1, 2), net=Net(hidden=(3,)))


def test_save_and_load_round_trip(tmp_path):
    cfg = Train(
        algo="1e3",  # strings that look like other things must come back as strings
        env="yes",
        mixer="null",
        env_kwargs={"sight": 2, "when": "2024-01-01", "nested": {"a": [1, 2]}},
        total_env_steps=123_456_789_012,
        lr=1e-10,
        tau=1e308,
        anything=float("inf"),
        hidden=(),
        weights={"a": 0.5},
        tags={"": "", "note": "multi\nline: text # not a comment", "odd": "caf\u00e9 \x85 \u2028"},
        net=Net(hidden=(5, 6), activation="tanh", dropout=0.25),
    )
    path = save_config(cfg, tmp_path / "out" / "cfg.yaml")
    assert load_config(Train, [path]) == cfg
    assert path.read_text().startswith("algo: '1e3'\nenv: 'yes'\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),  # Any: unchecked
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)  # a plain float field's values
nets = st.builds(
    Net,
    hidden=st.lists(st.integers(1, 4096), max_size=4).map(tuple),
    activation=st.sampled_from(["relu", "tanh"]),
    dropout=finite_floats,
)
configs = st.builds(
    Train,
    algo=st.text(),
    env=st.text(),
    env_kwargs=st.dictionaries(st.text(), json_values, max_size=4),
    total_env_steps=st.integers(),
    lr=finite_floats,
    double_q=st.booleans(),
    target_update=st.sampled_from(["hard", "soft"]),
    tau=st.none() | finite_floats,
    hidden=st.lists(st.integers(), max_size=4).map(tuple),
    mixer=st.none() | st.text(),
    grid=st.tuples(st.integers(), st.integers()),
    seeds=st.lists(st.integers(), max_size=4),
    weights=st.dictionaries(st.text(), finite_floats, max_size=3),
    tags=st.dictionaries(st.text(), json_values, max_size=3),
    eps=st.none() | finite_floats,
    out=st.sampled_from([Path("runs"), Path("a/b c"), Path("/tmp/x.yaml")]),
    net=nets,
    anything=st.floats(allow_nan=False),  # nan != nan would fail the equality; its own test below
)


@pytest.fixture(scope="module")
def roundtrip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("roundtrip")


@settings(max_examples=150, deadline=None)
@given(cfg=configs)
def test_round_trip_property(cfg, roundtrip_dir):
    path = save_config(cfg, roundtrip_dir / "cfg.yaml")
    assert load_config(Train, [path]) == cfg
    assert from_dict(Train, to_dict(cfg)) == cfg


# --- documentation ---------------------------------------------------------------------------


def test_field_docs_from_comments_multiline_defaults_and_metadata():
    docs = field_docs(Train)
    assert list(docs) == [f.name for f in dataclasses.fields(Train)]
    assert docs["lr"] == "Adam learning rate"
    assert docs["env_kwargs"] == "keyword arguments for the env"
    assert docs["target_update"] == '"hard" or "soft"'
    assert docs["tau"] == "soft update rate (None = not used)"
    assert docs["seeds"] == "seeds to run"  # comment after a default spread over three lines
    assert docs["weights"] == "per-agent loss weights"  # from metadata
    assert docs["tags"] == ""
    assert docs["eps"] == ""  # a tool directive (noqa) is not a meaning


def test_field_docs_without_source_fall_back_to_metadata():
    made = dataclasses.make_dataclass(
        "Made", [("a", int, field(default=1, metadata={"doc": "the a"})), ("b", float, field(default=0.5))]
    )
    assert field_docs(made) == {"a": "the a", "b": ""}
    assert from_dict(made, {"a": 2e3, "b": 1}) == made(a=2000, b=1.0)
    assert "the a" in describe(made)


def test_field_docs_first_line_comment_and_inheritance():
    @dataclass(frozen=True)
    class Base:
        x: int = 1  # the x
        y: int = 2  # the y

    @dataclass(frozen=True)
    class Child(Base):
        y: int = dataclasses.field(  # the new y
            default=3
        )
        z: int = 4  # the z

    assert field_docs(Child) == {"x": "the x", "y": "the new y", "z": "the z"}


def test_describe_lists_every_field_with_type_default_and_meaning():
    text = describe(Train)
    lines = text.splitlines()
    assert lines[0] == "Train"
    assert lines[1].split() == ["field", "type", "default", "meaning"]
    for name in [f.name for f in dataclasses.fields(Train) if f.name != "net"]:
        assert any(line.startswith(name + " ") for line in lines), name
    for name in ("net.hidden", "net.activation", "net.dropout"):
        assert any(line.startswith(name + " ") for line in lines), name
    lr = next(line for line in lines if line.startswith("lr "))
    assert lr.split() == ["lr", "float", "0.0005", "Adam", "learning", "rate"]
    assert next(line for line in lines if line.startswith("hidden ")).split()[1:5] == [
        "tuple[int,",
        "...]",
        "[64]",
        "layer",
    ]
    assert next(line for line in lines if line.startswith("tau ")).split()[1:5] == [
        "float",
        "|",
        "None",
        "null",
    ]
    assert next(line for line in lines if line.startswith("weights ")).split()[3:] == [
        "{}",
        "per-agent",
        "loss",
        "weights",
    ]
    wide = describe(Wide)
    assert (
        wide.splitlines()[0]
        == "Wide: A config whose nested default differs from the nested class's defaults."
    )
    assert "[128, 128]" in wide and "tanh" in wide


def test_config_error_is_a_value_error_and_module_imports_no_jax():
    assert issubclass(ConfigError, ValueError)
    code = "import sys, credo.config; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_non_finite_floats_survive_files_where_a_field_allows_them(tmp_path):
    cfg = load_config(Train, [save_config(Train(anything=float("nan")), tmp_path / "c.yaml")])
    assert math.isnan(cfg.anything)
    cfg = load_config(Train, [save_config(Train(anything=float("-inf")), tmp_path / "c.yaml")])
    assert cfg.anything == float("-inf")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_plain_float_fields_refuse_non_finite_values_from_files_and_overrides(tmp_path, value):
    path = save_config(Train(lr=value), tmp_path / "c.yaml")  # direct construction is not checked
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: field 'lr' .*write a finite number"):
        load_config(Train, [path])
    with pytest.raises(ConfigError, match=r"--set: field 'net\.dropout' .*write a finite number"):
        load_config(Train, overrides=[f"net.dropout={'.nan' if math.isnan(value) else '-.inf'}"])
    with pytest.raises(ConfigError, match=r"field 'weights' .*value of 'a' is inf"):
        load_config(Train, overrides=["weights={a: 1e999}"])


def test_tuned_layer_gives_each_algorithm_its_sources_settings_on_lbf():
    # `credo train iql lbf:...` is EPyMARL's IQL on LBF (GRU 128, lr 3e-4, epsilon over 200k), while
    # QMIX on LBF and IQL elsewhere keep the class defaults.
    from credo.algos.value import ValueConfig
    from credo.cli import config_files

    def cfg(algo, env, *overrides):
        return load_config(
            ValueConfig, config_files(algo, env), list(overrides), base={"algo": algo, "env": env}
        )

    lbf = "lbf:Foraging-8x8-2p-3f-v3"
    iql = cfg("iql", lbf)
    assert (iql.use_rnn, iql.hidden_dim, iql.lr, iql.epsilon_anneal_steps) == (True, 128, 3e-4, 200_000)
    assert (iql.td_lambda, iql.target_update_unit, iql.standardise_rewards) == (0.0, "updates", True)
    assert config_files("iql", lbf)[-1].parent.name == "lbf"
    assert cfg("iql", "mpe:simple_spread").hidden_dim == 64
    qmix = cfg("qmix", lbf)
    assert (qmix.use_rnn, qmix.td_lambda, qmix.standardise_rewards) == (True, 0.6, True)
    qllm = cfg("qllm", lbf, "tfcaf=x.py")
    assert (qllm.n_envs, qllm.epsilon_anneal_steps, qllm.test_epsilon) == (8, 200_000, 0.05)
    # every tuned file names only real fields of the learner it is for
    root = config_files("iql", lbf)[-1].parent.parent
    for path in root.glob("*/*.yaml"):
        algo, family = path.stem, path.parent.name
        env = {"lbf": lbf, "mpe": "mpe:simple_spread", "matrix": "matrix:climbing"}[family]
        cfg(algo, env, *(["tfcaf=x.py"] if algo == "qllm" else []))
