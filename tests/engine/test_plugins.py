"""Plugins by name: entry points always, ``module:attr`` only once trusted; the entry-point scan runs once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from reptile_engine import catalog, cli, plugins
from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.rl import families
from reptile_engine.tasks import registry

SINE = "reptile_engine.tasks.sine:SineTasks"
POINT_NAV = "reptile_engine.rl.families.point_nav:PointNavFamily"


@pytest.fixture
def no_trust(monkeypatch):
    """An empty trusted set that is restored afterwards, whatever ``plugins.trust`` writes meanwhile."""
    monkeypatch.setenv(plugins.ENV_VAR, "")


@pytest.fixture
def planted(tmp_path, monkeypatch) -> tuple[str, object]:
    """A ``module:attr`` whose import leaves a marker file: a stand-in for code a file should not run."""
    marker = tmp_path / "ran"
    (tmp_path / "planted_payload.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).touch()
        Tasks = None
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "planted_payload", raising=False)
    return "planted_payload:Tasks", marker


@pytest.mark.parametrize("name", ["os:abort", "builtins:print", "code:interact", "math:pi"])
def test_untrusted_module_attr_in_a_config_is_refused(no_trust, name):
    for parse in (lambda: ExperimentConfig.from_dict({"task": {"name": name}}),
                  lambda: ExperimentConfig.from_toml(f'[task]\nname = "{name}"\n'),
                  lambda: ExperimentConfig().with_updates({"task.name": name})):
        with pytest.raises(ConfigError) as info:
            parse()
        assert info.value.field == "task.name"
        assert f"--plugin {name}" in str(info.value) and plugins.ENV_VAR in str(info.value)
        assert "runs that code" in str(info.value)


def test_an_untrusted_name_is_never_imported(no_trust, planted):
    name, marker = planted
    refusals = [
        lambda: ExperimentConfig.from_dict({"task": {"name": name}}),
        lambda: ExperimentConfig.from_toml(f'[task]\nname = "{name}"\n'),
        lambda: catalog.resolve(name),
        lambda: registry.resolve(name),
        lambda: families.resolve(name),
    ]
    for refuse in refusals:
        with pytest.raises(ConfigError):
            refuse()
    assert catalog.kind_of(name) == "supervised"
    assert not marker.exists(), "the planted module was imported"
    assert "planted_payload" not in sys.modules


def test_trusted_names_resolve_like_entry_points(no_trust, monkeypatch):
    monkeypatch.setenv(plugins.ENV_VAR, f" {SINE} , {POINT_NAV},")
    assert plugins.trusted() == {SINE, POINT_NAV}
    assert ExperimentConfig().with_updates({"task.name": SINE}).kind == "supervised"
    assert catalog.kind_of(POINT_NAV) == "rl"
    assert families.make_family(POINT_NAV).name == "point-nav-2d"


def test_trust_adds_names_for_this_process_and_its_children(no_trust):
    plugins.trust(SINE)
    plugins.trust(SINE, POINT_NAV)
    assert os.environ[plugins.ENV_VAR] == f"{SINE},{POINT_NAV}"
    check = ("from reptile_engine.config import ExperimentConfig\n"
             f"ExperimentConfig().with_updates({{'task.name': {SINE!r}}})")
    child = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr


@pytest.mark.parametrize("name", ["os", ":abort", "os:", ""])
def test_trust_refuses_names_that_are_not_module_attr(no_trust, name):
    with pytest.raises(ConfigError, match="module:attr"):
        plugins.trust(name)
    assert plugins.trusted() == frozenset()


def test_the_cli_trusts_only_what_plugin_names(no_trust, tmp_path, capsys):
    tiny = ["--preset", "quick", "--model.hidden", "8", "--meta.iterations", "2", "--evaluation.tasks", "4",
            "--evaluation.steps", "1", "--evaluation.every", "1", "--quiet"]
    assert cli.main([*tiny, "--task.name", SINE, "--out", str(tmp_path / "refused")]) == 2
    assert f"--plugin {SINE}" in capsys.readouterr().err
    assert cli.main([*tiny, "--plugin", SINE, "--task.name", SINE, "--out", str(tmp_path / "trusted")]) == 0
    assert cli.main([*tiny, "--plugin", "os", "--out", str(tmp_path / "malformed")]) == 2
    assert "--plugin = 'os': must be module:attr" in capsys.readouterr().err


def test_entry_points_are_scanned_once_per_process(monkeypatch):
    scans = []

    def counting(**kwargs):
        scans.append(kwargs["group"])
        return real(**kwargs)

    real = plugins.entry_points
    monkeypatch.setattr(plugins, "entry_points", counting)
    plugins.refresh()
    config = ExperimentConfig()
    for step in range(20):
        config = config.with_updates({"inner.lr": 0.01 + step * 1e-3})
    assert len(scans) == len(set(scans)) <= 2, scans
    assert "sine" in registry.available()
    plugins.refresh()
    registry.available()
    assert scans.count(registry.ENTRY_POINT_GROUP) == 2, "refresh() rescans"
    monkeypatch.undo()
    plugins.refresh()
