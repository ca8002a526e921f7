"""``reptile-train`` end to end in a subprocess, with tiny budgets."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from reptile_engine import checkpoint
from reptile_engine.checkpoint import CheckpointError, load
from reptile_engine.cli import build_parser, main
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
    print(remote.pid, flush=True)
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


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), ("-inf", "'-inf'"), ("-0.5", "'-0.5'"),
                                              ("-1e-3", "'-1e-3'"), ("nan", "'nan'")])
def test_a_bad_flag_value_is_one_line_naming_the_flag_and_its_range(capsys, value, shown):
    with pytest.raises(SystemExit) as exit_info:
        main(["--inner.lr", value])
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err) == \
        f"reptile-train: error: --inner.lr = {shown}: must be a finite number in [1e-06, 10]"


def test_flag_errors_without_a_range_are_one_line_too(capsys):
    for argv in (["--no-such-flag", "1"], ["--inner.lr"], ["--model.activation", "sigmoid"],
                 ["--meta.meta_batch", "2.5"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert one_line(capsys.readouterr().err).startswith("reptile-train: error: ")


def test_negative_values_are_values_not_flags():
    args = build_parser().parse_args(["--rl.init_log_std", "-2", "--rl.init_log_std", "-2.5e-1"])
    assert vars(args)["rl.init_log_std"] == -0.25


def test_tensorboard_without_its_extra_is_one_line_saying_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main([*TINY, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 2
    message = one_line(capsys.readouterr().err)
    assert "--tensorboard" in message and "reptile-lab[tensorboard]" in message


def test_out_that_cannot_be_written_is_one_line_naming_out(tmp_path, capsys):
    assert main([*TINY, "--out", "/proc"]) == 2
    assert "--out = '/proc': is not writable" in one_line(capsys.readouterr().err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line_naming_out(tmp_path, capsys):
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o500)
    assert main([*TINY, "--out", str(out)]) == 2
    assert "--out" in one_line(capsys.readouterr().err)


def test_a_divergence_saves_the_last_good_state_and_exits_3(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--inner.lr", "10", "--quiet", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("diverged at iteration") == 4, "three rollbacks in a row are allowed, the fourth stops"
    assert "--resume" in err
    _, meta = load(out / "checkpoint.safetensors")
    assert meta["iteration"] == len(rows(out / "metrics.csv"))


def test_max_rollbacks_zero_stops_at_the_first_divergence(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--inner.lr", "10", "--max-rollbacks", "0", "--quiet", "--out", str(out)]) == 3
    assert capsys.readouterr().err.count("diverged at iteration") == 1


def test_failed_saves_are_reported_as_they_happen_and_the_exit_is_nonzero(tmp_path, capsys, monkeypatch):
    def disk_full(path, tensors, meta):
        raise CheckpointError(f"cannot write checkpoint {path}: No space left on device")

    monkeypatch.setattr(checkpoint, "save", disk_full)
    out = tmp_path / "run"
    assert main([*TINY, "--checkpoint_every", "5", "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    automatic = [line for line in err if "automatic save failed" in line]
    assert [line.split("iteration ")[1].split(":")[0] for line in automatic] == ["5", "10", "15", "20"]
    assert "final save failed" in err[-1] and "No space left on device" in err[-1]


def test_resume_cuts_metrics_back_to_the_checkpoint_and_writes_integer_iterations(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--quiet", "--out", str(out)]) == 0
    with open(out / "metrics.csv", "a") as f:  # rows written after the checkpoint, then a torn row: a crash
        f.write("".join(f"{i}.0,1,1,1,1,5,5,1,1\n" for i in range(21, 26)) + "26.0,1,")
    assert main(["--resume", str(out / "checkpoint.safetensors"), "--meta.iterations", "30", "--quiet",
                 "--out", str(out)]) == 0
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,")
    assert [line.split(",")[0] for line in lines[1:]] == [str(i) for i in range(1, 31)]


def test_resume_writes_a_header_into_an_empty_metrics_file(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--quiet", "--out", str(out)]) == 0
    (out / "metrics.csv").write_text("")
    assert main(["--resume", str(out / "checkpoint.safetensors"), "--meta.iterations", "25", "--quiet",
                 "--out", str(out)]) == 0
    assert [int(r["iteration"]) for r in rows(out / "metrics.csv")] == list(range(21, 26))


def test_metrics_survive_a_kill_after_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "reptile_engine", *TINY, "--meta.iterations", "1000000",
                                "--checkpoint_every", "40", "--out", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("checkpoint saved at iteration 200"):
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    saved = load(out / "checkpoint.safetensors")[1]["iteration"]
    result = cli("--resume", str(out / "checkpoint.safetensors"), "--meta.iterations", str(saved + 30),
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [int(r["iteration"]) for r in rows(out / "metrics.csv")] == list(range(1, saved + 31))


def test_resume_that_changes_the_horizon_of_a_schedule_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["--resume", str(out / "checkpoint.safetensors"), "--meta.iterations", "40", "--quiet",
                 "--out", str(out)]) == 0
    notice = one_line(capsys.readouterr().err)
    assert "meta.iterations changed from 20 to 40" in notice and "linear meta_schedule" in notice
    assert "rescales" in build_parser().format_help()


def test_a_config_that_cannot_fit_is_refused_before_training(tmp_path, capsys):
    started = time.monotonic()
    assert main(["--preset", "meta-rl", "--rl.episodes", "1000", "--meta.meta_batch", "4096", "--rl.horizon",
                 "100000", "--out", str(tmp_path / "run")]) == 2
    assert time.monotonic() - started < 5
    message = one_line(capsys.readouterr().err)
    assert "meta.meta_batch = 4096" in message and "rl.episodes = 1000" in message and "--allow-large" in message
