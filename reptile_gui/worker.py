"""The worker: a QObject on its own QThread that relays a child-process trainer's events to Qt.

The trainer itself runs in a child process (``RemoteTrainer``) so that its many small tensor ops
never compete with the GUI for the GIL. This worker only waits on the child's event queue, turns
metrics into columnar numpy arrays off the GUI thread, and emits one ``batchReady`` signal per batch
(at most about 60 per second, never one per inner step). It reads until the child has sent its last
event, so what comes with or after ``Finished`` (the final ``CheckpointSaved``) is never dropped.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from reptile_engine.events import Event, Failed, Finished, is_metrics
from reptile_engine.remote import RemoteTrainer
from reptile_gui.store import metrics_to_columns


@dataclass(frozen=True)
class EventBatch:
    """What one signal carries: metrics as columns (``{}`` when none came), every other event in arrival order."""

    generation: int
    metrics: dict[str, np.ndarray]
    events: list[Event] = field(default_factory=list)


class TrainingWorker(QObject):
    """Relays ``RemoteTrainer`` events; commands go to the ``RemoteTrainer`` directly (its queues are
    thread- and process-safe)."""

    batchReady = Signal(object)
    done = Signal(int)

    POLL_SECONDS = 0.05

    def __init__(self, remote: RemoteTrainer, generation: int):
        super().__init__()
        self.remote = remote
        self.generation = generation
        self._quit = False

    def request_quit(self) -> None:
        """Ask the relay loop to end within ``POLL_SECONDS``; safe from any thread."""
        self._quit = True

    @Slot()
    def run(self) -> None:
        try:
            self.remote.start()
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure, never a silent dead worker
            failure = [Failed(0, f"Cannot start the training process: {type(exc).__name__}: {exc}",
                              traceback.format_exc()), Finished(0, "failed")]
            self.batchReady.emit(EventBatch(self.generation, {}, failure))
            self.done.emit(self.generation)
            return
        while not self._quit and not self.remote.ended:
            events = self.remote.events(timeout=self.POLL_SECONDS)
            if events:
                metrics = [e for e in events if is_metrics(e)]
                others = [e for e in events if not is_metrics(e)]
                self.batchReady.emit(EventBatch(self.generation, metrics_to_columns(metrics), others))
        self.done.emit(self.generation)


class WorkerThread:
    """A ``RemoteTrainer``, the ``TrainingWorker`` that relays it and the ``QThread`` that worker runs on.

    ``on_batch`` and ``on_done`` receive the worker's signals in their own (the GUI) thread. ``end()`` ends the
    child at once and joins the thread: a running ``QThread`` destroyed at exit aborts the process.
    """

    def __init__(self, remote: RemoteTrainer, generation: int, on_batch: Callable[[EventBatch], None],
                 on_done: Callable[[int], None]):
        self.remote = remote
        self.worker = TrainingWorker(remote, generation)
        self.thread = QThread()
        self.thread.setObjectName(f"reptile-worker-{generation}")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.batchReady.connect(on_batch)
        self.worker.done.connect(on_done)

    def start(self) -> None:
        self.thread.start()

    def end(self) -> None:
        self.worker.request_quit()
        self.thread.quit()
        self.thread.wait()
        self.remote.close(timeout=0)
