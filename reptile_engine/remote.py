"""A trainer in a child process, with the same command verbs as ``Trainer``.

A training loop of many tiny tensor ops holds the GIL most of the time, so an app that runs it on a
thread loses both GUI responsiveness and training speed. ``RemoteTrainer`` runs a trainer's ``run()`` in
a spawned process, relays commands to it and hands back its events in small batches (metrics are
gathered for ``flush_interval`` seconds; everything else goes at once). No tensor crosses: events
are plain dataclasses of Python scalars and small numpy arrays.

With a ``checkpoint_path`` the final state is saved there and its ``CheckpointSaved`` sent before
``Finished``; after ``Finished`` the child sends only an end-of-stream marker, so a reader that goes on
until ``ended`` has seen every event.

In a script, create it under ``if __name__ == "__main__":`` (the child is spawned, not forked).

>>> from reptile_engine.presets import preset
>>> remote = RemoteTrainer(preset("quick").with_updates({"meta.iterations": 5}))
>>> remote.start()
>>> events = []
>>> while not remote.ended:
...     events += remote.events(timeout=5.0)
>>> type(events[-1]).__name__
'Finished'
>>> remote.close()
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reptile_engine.checkpoint import CheckpointError
from reptile_engine.commands import (
    Command,
    ComputeLandscape,
    Evaluate,
    FitTask,
    Pause,
    Resume,
    SaveCheckpoint,
    Step,
    Stop,
    Update,
)
from reptile_engine.config import ExperimentConfig, require_live
from reptile_engine.events import (
    METRIC_TYPES,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Dispatch,
    Event,
    Failed,
    Finished,
    all_but,
)
from reptile_engine.trainer import Trainer, open_trainer, resume_trainer


def _relay_commands(commands: mp.Queue, trainer: Trainer) -> None:
    """Forward the parent's commands; stop the trainer if the parent dies without saying so."""
    parent = mp.parent_process()
    while True:
        try:
            command = commands.get(timeout=1.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                trainer.commands.put(Stop())
                return
            continue
        trainer.commands.put(command)


TERMINATE_GRACE_SECONDS = 2.0
"""How long a terminated child gets to exit before it is killed."""

END_OF_STREAM = None
"""What the child puts on the event queue last, after every batch (``Finished`` included)."""


def _save_final_state(trainer: Trainer, path: str) -> Event:
    """Save the state the run ended in, answered as ``CheckpointSaved`` (or ``CommandRejected`` if it failed)."""
    try:
        trainer.save_checkpoint(path)
    except CheckpointError as exc:
        return CommandRejected(trainer.iteration, str(exc), "checkpoint")
    return CheckpointSaved(trainer.iteration, path)


class _Outbox:
    """Events on their way to the parent: metrics gathered for ``flush_interval`` s, everything else at once.

    Only fast metrics wait (progress within an iteration goes at once): the trainer may block next (paused) or
    take long to the next event. Before ``Finished`` the final state is saved, when there is a ``checkpoint_path``.
    """

    def __init__(self, trainer: Trainer, checkpoint_path: str | None, events: mp.Queue, flush_interval: float):
        self.trainer, self.checkpoint_path, self.events, self.flush_interval = \
            trainer, checkpoint_path, events, flush_interval
        self.pending: list[Event] = []
        self.last_flush = self.last_event = time.monotonic()
        self._may_wait = Dispatch({METRIC_TYPES: lambda _: True, Finished: self._finish,
                                   all_but(*METRIC_TYPES, Finished): lambda _: False})

    def _finish(self, event: Finished) -> bool:
        if self.checkpoint_path is not None:
            self.pending.append(_save_final_state(self.trainer, self.checkpoint_path))
        return False

    def put(self, event: Event) -> None:
        may_wait = self._may_wait(event)
        self.pending.append(event)
        now = time.monotonic()
        if (not may_wait or self.trainer.paused or now - self.last_flush >= self.flush_interval
                or now - self.last_event >= self.flush_interval):
            self.flush()
            self.last_flush = now
        self.last_event = now

    def flush(self) -> None:
        if self.pending:
            self.events.put(self.pending)
            self.pending = []


def _serve(config: ExperimentConfig, resume: str | None, checkpoint_path: str | None, start_paused: bool,
           iterations: int | None, commands: mp.Queue, events: mp.Queue, flush_interval: float) -> None:
    """The child process: train, relay commands in, batch events out, then mark the end of the stream."""
    iteration = 0
    outbox: _Outbox | None = None
    try:
        if resume is not None:
            trainer = resume_trainer(resume, config=config, checkpoint_path=checkpoint_path)
        else:
            trainer = open_trainer(config, checkpoint_path=checkpoint_path)
        iteration = trainer.iteration
        threading.Thread(target=_relay_commands, args=(commands, trainer), daemon=True).start()
        outbox = _Outbox(trainer, checkpoint_path, events, flush_interval)
        for event in trainer.run(iterations, start_paused=start_paused):
            iteration = trainer.iteration
            outbox.put(event)
        outbox.flush()
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as an event
        pending = outbox.pending if outbox is not None else []
        events.put([*pending, Failed(iteration, f"{type(exc).__name__}: {exc}", traceback.format_exc()),
                    Finished(iteration, "failed")])
    finally:
        events.put(END_OF_STREAM)
        parent = mp.parent_process()
        if parent is not None and not parent.is_alive():
            events.cancel_join_thread()  # nobody will read the rest: exit instead of blocking on a full pipe


class RemoteTrainer:
    """Drive a ``Trainer`` in a child process: same commands, events in batches, no shared state.

    ``resume`` starts from a checkpoint (with ``config`` in place of the stored one); ``start_paused``
    waits for ``resume()``; with a ``checkpoint_path`` the final state is saved there when the run ends.
    ``finished`` turns true with the ``Finished`` event, ``ended`` once the child has sent its last event.
    """

    def __init__(self, config: ExperimentConfig, *, resume: str | Path | None = None,
                 checkpoint_path: str | Path | None = None, start_paused: bool = False,
                 iterations: int | None = None, flush_interval: float = 1 / 60):
        self.config = config.validate()
        self._args = (config, None if resume is None else str(resume),
                      None if checkpoint_path is None else str(checkpoint_path), start_paused, iterations)
        context = mp.get_context("spawn")
        self._commands: mp.Queue = context.Queue()
        self._events: mp.Queue = context.Queue()
        self._process = context.Process(target=_serve, args=(*self._args, self._commands, self._events,
                                                             flush_interval), daemon=True, name="reptile-trainer")
        self.finished = False
        self.ended = False
        self._track = Dispatch({ConfigChanged: self._on_config_changed, Finished: self._on_finished,
                                all_but(ConfigChanged, Finished): lambda _: None})

    def _on_config_changed(self, event: ConfigChanged) -> None:
        self.config = event.config

    def _on_finished(self, event: Finished) -> None:
        self.finished = True

    def start(self) -> None:
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The child process's id once started (to watch or signal it from outside)."""
        return self._process.pid

    def _send(self, command: Command) -> None:
        if not self.finished:
            self._commands.put(command)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Queue a change of live fields; raises ``ConfigError`` at once for a bad one."""
        require_live(changes)
        self.config.with_updates(changes)
        self._send(Update(dict(changes)))

    def pause(self) -> None:
        self._send(Pause())

    def resume(self) -> None:
        self._send(Resume())

    def request_step(self) -> None:
        self._send(Step())

    def stop(self) -> None:
        self._send(Stop())

    def request_checkpoint(self, path: str | Path) -> None:
        self._send(SaveCheckpoint(str(path)))

    def request_evaluation(self) -> None:
        self._send(Evaluate())

    def request_task_fit(self, command: FitTask) -> None:
        self._send(command)

    def request_landscape(self) -> None:
        self._send(ComputeLandscape())

    def events(self, timeout: float) -> list[Event]:
        """The next batch of events (waiting up to ``timeout`` s), plus any batches already queued.

        A child that died without a word is reported as ``Failed`` and ``Finished``; either way ``ended``
        turns true once nothing more can come.
        """
        exited = self._process.exitcode is not None  # before reading: all it sent is in the pipe by now
        batches = []
        try:
            batches.append(self._events.get(timeout=timeout))
            while True:
                batches.append(self._events.get_nowait())
        except queue.Empty:
            pass
        self.ended = self.ended or END_OF_STREAM in batches or (exited and not batches)
        out = [event for batch in batches if batch is not END_OF_STREAM for event in batch]
        for event in out:
            self._track(event)
        if self.ended and not self.finished:
            out += [Failed(0, f"the training process died (exit code {self._process.exitcode})", ""),
                    Finished(0, "failed")]
            self.finished = True
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child, waiting up to ``timeout`` s for it to save its final state and exit, then end it.

        ``timeout=0`` ends it at once, for a caller that will not use the final state (an app that quits).
        """
        if self._process.pid is None:
            return
        if self._process.is_alive() and timeout > 0:
            self._commands.put(Stop())
            deadline = time.monotonic() + timeout
            while self._process.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    self._events.get(timeout=0.05)
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(TERMINATE_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self.finished = self.ended = True
        self._commands.cancel_join_thread()
        self._events.cancel_join_thread()
