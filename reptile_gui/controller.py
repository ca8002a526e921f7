"""The controller: the only module that touches both Qt and the trainer.

It owns the worker thread and the child-process trainer behind it, turns button presses into
commands, feeds events into the ``RunStore`` and tells the widgets what changed through signals.

The run states and the actions each allows are in ``run_states``.

Closing does not wait for the trainer to stop on its own: the app's run folder goes with it, so the child
process is ended at once.

The task view (``TaskViewRequests``) is asked for when the trainer comes up, after every adaptation curve, and
for a new task seed or edited support points on request.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from reptile_engine.config import ExperimentConfig, get_value, is_live, require_live
from reptile_engine.events import (
    METRIC_TYPES,
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Dispatch,
    Diverged,
    Failed,
    Finished,
    IterationProgress,
    LandscapeReady,
    Rollouts,
    StateChanged,
    TaskFit,
)
from reptile_engine.remote import RemoteTrainer
from reptile_gui import session
from reptile_gui.run_states import ACTIONS, SHAPE_FIELDS
from reptile_gui.store import RunStore
from reptile_gui.task_requests import Support, TaskViewRequests
from reptile_gui.worker import EventBatch, WorkerThread


class TrainingController(QObject):
    """Start, pause, resume, step, stop, reset and steer one Reptile run."""

    stateChanged = Signal(str)
    configChanged = Signal(object)
    changeApplied = Signal(object)
    changeRejected = Signal(str, str)
    storeUpdated = Signal()
    diverged = Signal(object)
    failed = Signal(str, str)
    message = Signal(str)
    sessionSaved = Signal(str)

    def __init__(self, config: ExperimentConfig, store: RunStore | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store if store is not None else RunStore()
        self.config = config.validate()
        self.state = "starting"
        self.iteration = 0
        self._workdir = tempfile.TemporaryDirectory(prefix="reptile-lab-")
        self._checkpoint = Path(self._workdir.name) / "run.safetensors"
        self.store.spill_to(self._workdir.name)
        self._has_checkpoint = False
        self._generation = 0
        self._remote: RemoteTrainer | None = None
        self._relay: WorkerThread | None = None
        self._task_view = TaskViewRequests()
        self._pending_session: tuple[Path, Path] | None = None
        self._after_finish: str | None = None
        self._paused_by_divergence = False
        self._saved_iteration = 0
        # How far the meta-iteration under way has come (a long meta-RL one reports it); None between iterations.
        self.progress: IterationProgress | None = None
        self._handle = self._handlers()

    # Lifecycle.

    def open(self) -> None:
        """Start a fresh, paused trainer (the state on launch)."""
        self._spawn(resume=False)

    def shutdown(self) -> None:
        """End the trainer process and join the worker thread; call before the app exits."""
        self._teardown()
        self._workdir.cleanup()

    def _spawn(self, resume: bool, start_paused: bool = True) -> None:
        self._teardown()
        self._generation += 1
        self.progress = None
        self.store.set_kind(self.config.kind)
        self._remote = RemoteTrainer(self.config, resume=self._checkpoint if resume else None,
                                     checkpoint_path=self._checkpoint, start_paused=start_paused)
        self._relay = WorkerThread(self._remote, self._generation, self._on_batch, self._on_worker_done)
        self._set_state("starting")
        self._relay.start()

    def _teardown(self) -> None:
        """End the trainer process at once and join the worker thread.

        An ended run's final state is already saved (it comes before ``Finished``); every other caller
        replaces or discards the run, so nothing is gained by waiting for the child to stop on its own.
        """
        if self._relay is not None:
            self._relay.end()
        self._relay = self._remote = None

    # Run controls.

    def allowed(self, action: str) -> bool:
        return action in ACTIONS[self.state]

    @property
    def unsaved(self) -> bool:
        """Whether iterations were trained since the session was last saved or opened (or the run began)."""
        return self.iteration != self._saved_iteration

    def start(self) -> None:
        """Start a ready run, or continue an ended one from its saved state with its history."""
        if self.state == "ready" and self._remote is not None:
            self._remote.resume()
        elif self.state in ("stopped", "finished", "failed"):
            if not self._has_checkpoint:
                self._clear_run()
            self._spawn(resume=self._has_checkpoint, start_paused=False)

    def pause(self) -> None:
        if self.allowed("pause"):
            self._remote.pause()

    def resume(self) -> None:
        if self.allowed("resume"):
            self._paused_by_divergence = False
            self._remote.resume()

    def toggle(self) -> None:
        """Space: start, pause or resume, whichever the state allows."""
        for action in ("start", "pause", "resume"):
            if self.allowed(action):
                getattr(self, action)()
                return

    def step(self) -> None:
        if self.allowed("step"):
            self._remote.request_step()

    def stop(self) -> None:
        if self.allowed("stop"):
            self._remote.stop()

    def reset(self) -> None:
        """New meta-parameters, cleared history, the same config."""
        self._clear_run()
        self._spawn(resume=False)

    def _clear_run(self) -> None:
        """Forget the run: its history, its saved state and its iteration count (its trainer first, so that
        no late save of the old run lands after the checkpoint is removed)."""
        self._teardown()
        self.store.clear()
        self.iteration = self._saved_iteration = 0
        self._has_checkpoint = False
        self._checkpoint.unlink(missing_ok=True)
        self.storeUpdated.emit()

    # Configuration.

    def update(self, changes: dict[str, Any]) -> None:
        """Change fields. Live fields go to a running trainer; the rest only while nothing runs.

        Raises ``ConfigError`` naming the field for a bad value or a field that cannot change now.
        """
        new = self.config.with_updates(changes)
        if self.state in ("running", "paused") or (self.state == "ready" and self.iteration > 0):
            require_live(changes, allowed="can change only while stopped")
            self._remote.update(changes)
            return
        if self.state == "starting":
            require_live(changes, allowed="can change once the trainer has started")
        live = all(is_live(path) for path in changes)
        discards = self.discards_run(changes)
        self.config = new
        self.configChanged.emit(new)
        if self.state in ("stopped", "finished", "failed") and discards:
            self._clear_run()
            self._spawn(resume=False)
        elif self.state == "ready" and not live:
            self._spawn(resume=False)
        elif self.state in ("ready", "starting") and self._remote is not None:
            self._remote.update(changes)

    def discards_run(self, changes: dict[str, Any]) -> bool:
        """Whether applying ``changes`` throws the run away: a new task or model shape cannot continue it."""
        return any(path in SHAPE_FIELDS and value != get_value(self.config, path) for path, value in changes.items())

    def editable_now(self, path: str) -> bool:
        """Whether a field may change in the current state (the panel greys out the others)."""
        if is_live(path):
            return self.state != "starting"
        return self.state in ("stopped", "finished", "failed") or (self.state == "ready" and self.iteration == 0)

    # Task view.

    def fit_task(self, seed: int | None = None, support: Support | None = None, keep_support: bool = False) -> None:
        """Adapt the task view's task from the current meta-parameters (new seed or edited points); the answer
        (see ``TaskViewRequests.next_request``) arrives as ``store.task_fit`` or ``store.rollouts``."""
        self._task_view.choose(seed, support, keep_support)
        if self.state in ("stopped", "finished", "failed"):
            self.message.emit(f"The run is {self.state}: the task view refits when it continues (Start)")
            return
        if self._remote is None or self.state == "starting":
            return
        self._remote.request_task_fit(self._task_view.next_request(self.store.kind, self.config))

    def _task_view_empty(self) -> bool:
        return (self.store.rollouts if self.store.kind == "rl" else self.store.task_fit) is None

    # Landscape.

    def compute_landscape(self) -> None:
        """Ask the trainer for a loss-landscape slice now (it arrives as ``store.landscape``)."""
        if self._remote is not None and self.state in ("ready", "running", "paused"):
            self._remote.request_landscape()
        else:
            self.message.emit("Start or step the run to compute a landscape slice")

    # Sessions.

    def save_session(self, path: str | Path) -> None:
        """Write config, checkpoint and history to ``path`` (a checkpoint is requested first if running)."""
        path = Path(path)
        if self._remote is not None and self.state in ("ready", "running", "paused"):
            snapshot = Path(self._workdir.name) / "session.safetensors"
            self._pending_session = (path, snapshot)
            self._remote.request_checkpoint(snapshot)
        elif self._has_checkpoint:
            self._write_session(path, self._checkpoint, self.iteration)
        else:
            self.failed.emit(f"Cannot save a session to {path}: no trainer state yet", "")

    def _write_session(self, path: Path, checkpoint: Path, iteration: int) -> None:
        try:
            session.save(path, self.config, checkpoint, self.store)
        except session.SessionError as exc:
            self.failed.emit(str(exc), "")
            return
        self._saved_iteration = iteration
        self.message.emit(f"Session saved to {path}")
        self.sessionSaved.emit(str(path))

    def load_session(self, path: str | Path) -> bool:
        """Replace the run by a saved session; on any error the current run stays as it was (returns False).

        The session is read and checked in full before the running trainer is touched.
        """
        try:
            loaded = session.load(path, Path(self._workdir.name) / "loaded.safetensors")
        except session.SessionError as exc:
            self.failed.emit(str(exc), "")
            return False
        except Exception as exc:  # noqa: BLE001 - a file must never take the running run down with it
            self.failed.emit(f"Cannot open session {path}: {type(exc).__name__}: {exc}", traceback.format_exc())
            return False
        self._teardown()
        loaded.checkpoint.replace(self._checkpoint)
        self.config = loaded.config
        session.restore_store(self.store, loaded)
        self.iteration = self._saved_iteration = int(self.store.latest("iteration") or 0)
        self._has_checkpoint = True
        self.configChanged.emit(self.config)
        self.storeUpdated.emit()
        self._spawn(resume=True)
        self.message.emit(f"Session {path} opened at iteration {self.iteration}")
        return True

    # Events.

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    @Slot(object)
    def _on_batch(self, batch: EventBatch) -> None:
        if batch.generation != self._generation:
            return
        if batch.metrics:
            self.store.extend_metrics(batch.metrics)
            self.iteration = int(batch.metrics["iteration"][-1])
            if self.progress is not None and self.progress.iteration <= self.iteration:
                self.progress = None
        for event in batch.events:
            self._handle(event)
        self.storeUpdated.emit()

    def _handlers(self) -> Dispatch[None]:
        """What each event does to the run; metrics come as the batch's columns, not one by one."""
        return Dispatch({IterationProgress: self._on_progress, StateChanged: self._on_state,
                         ConfigChanged: self._on_config_changed, AdaptationCurve: self._on_curve,
                         TaskFit: self._on_task_fit, Rollouts: self._on_rollouts, LandscapeReady: self._on_landscape,
                         Diverged: self._on_diverged, CommandRejected: self._on_rejected,
                         CheckpointSaved: self._on_checkpoint_saved, Failed: self._on_failed,
                         Finished: self._on_finished}, ignore=METRIC_TYPES)

    def _on_progress(self, event: IterationProgress) -> None:
        self.progress = event

    def _on_state(self, event: StateChanged) -> None:
        self.iteration = event.iteration
        if event.state == "running":
            self._set_state("running")
        else:
            self.progress = None
            self._set_state("ready" if event.iteration == 0 and self.state in ("starting", "ready") else "paused")
        if self._task_view_empty():
            self.fit_task(seed=self._task_view.seed)
        if self.store.landscape is None and self._remote is not None and self.config.landscape.plane != "pca":
            self._remote.request_landscape()

    def _on_config_changed(self, event: ConfigChanged) -> None:
        self.config = event.config
        self.store.add_change(event)
        self.configChanged.emit(event.config)
        self.changeApplied.emit(event)
        if self._paused_by_divergence and self.state == "paused":
            self._paused_by_divergence = False
            self._remote.resume()

    def _on_curve(self, event: AdaptationCurve) -> None:
        self.store.add_curve(event)
        self.fit_task(keep_support=True)

    def _on_task_fit(self, event: TaskFit) -> None:
        if event.request == self._task_view.request:
            self.store.set_task_fit(event)

    def _on_rollouts(self, event: Rollouts) -> None:
        if event.request == self._task_view.request:
            self.store.set_rollouts(event)

    def _on_landscape(self, event: LandscapeReady) -> None:
        self.store.set_landscape(event.slice)

    def _on_diverged(self, event: Diverged) -> None:
        self.store.divergences.append(event)
        self._paused_by_divergence = True
        self.diverged.emit(event)

    def _on_rejected(self, event: CommandRejected) -> None:
        if event.field and not event.field.startswith("landscape."):
            self.changeRejected.emit(event.field, event.message)
        self.message.emit(f"Rejected: {event.message}")

    def _on_checkpoint_saved(self, event: CheckpointSaved) -> None:
        if event.path == str(self._checkpoint):
            self._has_checkpoint = True
        if self._pending_session is not None and event.path == str(self._pending_session[1]):
            target, snapshot = self._pending_session
            self._pending_session = None
            self._write_session(target, snapshot, event.iteration)

    def _on_failed(self, event: Failed) -> None:
        self.failed.emit(event.message, event.traceback)
        self._after_finish = "failed"

    def _on_finished(self, event: Finished) -> None:
        self.progress = None
        self._after_finish = self._after_finish or ("finished" if event.reason == "completed" else "stopped")

    @Slot(int)
    def _on_worker_done(self, generation: int) -> None:
        if generation != self._generation:
            return
        final = self._after_finish
        self._after_finish = None
        if final is not None:
            self._teardown()
            self._set_state(final)
