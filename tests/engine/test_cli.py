"""``reptile-train`` end to end in a subprocess, with tiny budgets."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import pytest

from reptile_engine.checkpoint import load
from reptile_engine.config import ExperimentConfig

TINY = ["--preset", "quick", "--model.hidden", "8", "--meta.iterations", "20", "--evaluation.tasks", "4",
        "--evaluation.steps", "3", "--evaluation.every", "10"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reptile_engine", *args], capture_output=True, text=True,
                          timeout=120)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_every_file(tmp_path):
    out = tmp_path / "run"
    result = cli(*TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = rows(out / "metrics.csv")
    assert [int(r["iteration"]) for r in metrics] == list(range(1, 21))
    assert {"loss_before", "loss_after", "meta_lr", "inner_lr", "iterations_per_second"} <= set(metrics[0])
    curve = rows(out / "adaptation.csv")
    assert [int(r["inner_step"]) for r in curve] == [0, 1, 2, 3]
    assert all(float(r["meta_init_mse"]) > 0 and float(r["scratch_mse"]) > 0 for r in curve)
    config = ExperimentConfig.load(out / "config.toml")
    assert config.meta.iterations == 20 and config.model.hidden == 8
    _, meta = load(out / "checkpoint.safetensors")
    assert meta["iteration"] == 20
    assert "Adaptation curve after 20 meta-iterations" in result.stdout
    assert "iteration 20/20" in result.stdout, "plain progress lines when stdout is not a terminal"


def test_resume_continues_and_appends(tmp_path):
    out = tmp_path / "run"
    assert cli(*TINY, "--out", str(out)).returncode == 0
    result = cli("--resume", str(out / "checkpoint.safetensors"), "--meta.iterations", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [int(r["iteration"]) for r in rows(out / "metrics.csv")] == list(range(1, 31))
    assert load(out / "checkpoint.safetensors")[1]["iteration"] == 30


@pytest.mark.parametrize(("args", "field"), [
    (["--inner.lr", "nan"], "inner.lr"),
    (["--meta.meta_batch", "0"], "meta.meta_batch"),
    (["--inner.batch_size", "500"], "inner.batch_size"),
    (["--task.name", "no-such-task"], "task.name"),
])
def test_bad_value_exits_nonzero_naming_the_field(tmp_path, args, field):
    result = cli(*TINY, *args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and field in message[0], result.stderr


def test_bad_flag_and_bad_files_exit_nonzero(tmp_path):
    assert cli("--no-such-flag", "1").returncode == 2
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[inner]\nlr = 'fast'\n")
    result = cli("--config", str(bad_toml), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "inner.lr" in result.stderr
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 7)
    result = cli("--resume", str(corrupt), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "not a Reptile Lab checkpoint" in result.stderr


ORPHAN_SCRIPT = """
import os, sys
from reptile_engine.presets import preset
from reptile_engine.remote import RemoteTrainer

if __name__ == "__main__":
    remote = RemoteTrainer(preset("quick").with_updates({"meta.iterations": 10_000_000}))
    remote.start()
    remote.events(timeout=60.0)
    print(remote._process.pid, flush=True)
    os._exit(1)  # die without closing the trainer
"""


def test_trainer_process_exits_when_its_parent_dies(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    child = int(result.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, 9)
    raise AssertionError("the orphaned trainer process kept running")
