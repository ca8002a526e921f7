"""What other threads ask of a running trainer: small command dataclasses and the queue they wait in.

The trainer drains the queue at iteration boundaries only, so a command never lands in the middle of an
outer step; ``CommandQueue.interrupt_pending`` lets a long iteration give way to a stop or pause.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reptile_engine.config import require_live


@dataclass(frozen=True)
class Update:
    changes: dict[str, Any]


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Step:
    """Run exactly one iteration while paused."""


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class SaveCheckpoint:
    path: str


@dataclass(frozen=True)
class Evaluate:
    pass


@dataclass(frozen=True)
class ComputeLandscape:
    pass


@dataclass(frozen=True)
class FitTask:
    """Adapt one task drawn from ``seed`` (or to the given support points) and predict on a grid."""

    request: int
    seed: int
    steps: tuple[int, ...]
    support_x: tuple[float, ...] | None = None
    support_y: tuple[float, ...] | None = None
    grid_points: int = 200


Command = Update | Pause | Resume | Step | Stop | SaveCheckpoint | Evaluate | FitTask | ComputeLandscape


CONTROL_COMMANDS = (Pause, Resume, Step, Stop)
"""Commands that keep their order and go ahead of everything else queued."""


class CommandQueue:
    """The trainer's thread-safe inbox, drained between iterations.

    Control commands (pause, resume, step, stop) keep their order and come out before everything else, so a
    stop is never stuck behind a backlog. Updates merge into one. Other requests coalesce: one evaluation,
    one landscape, one task fit (the newest) and one save per path, however often they were asked for, in
    the order they were first asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._control: list[Command] = []
        self._changes: dict[str, Any] = {}
        self._requests: dict[Hashable, Command] = {}

    def put(self, command: Command) -> None:
        with self._lock:
            if isinstance(command, CONTROL_COMMANDS):
                self._control.append(command)
            elif isinstance(command, Update):
                self._changes.update(command.changes)
            else:
                key = ("save", command.path) if isinstance(command, SaveCheckpoint) else type(command)
                self._requests[key] = command
            self._lock.notify()

    def drain(self, block: bool) -> list[Command]:
        """Everything queued: control commands, then the merged update, then the requests.

        With ``block``, wait (without spinning) until there is at least one command.
        """
        with self._lock:
            while block and not (self._control or self._changes or self._requests):
                self._lock.wait()
            commands = [*self._control, *([Update(self._changes)] if self._changes else []),
                        *self._requests.values()]
            self._control, self._changes, self._requests = [], {}, {}
        return commands

    def interrupt_pending(self) -> bool:
        """Whether a stop, or a pause no later resume undoes, is waiting; cheap enough to ask between env steps.

        Nothing is taken off the queue: the commands are applied at the next boundary as usual.
        """
        if not self._control:
            return False
        with self._lock:
            if any(isinstance(command, Stop) for command in self._control):
                return True
            toggles = [command for command in self._control if isinstance(command, Pause | Resume)]
            return bool(toggles) and isinstance(toggles[-1], Pause)


class CommandMethods:
    """The trainer's thread-safe surface: each method only queues a command for the next iteration boundary."""

    commands: CommandQueue
    config: Any

    def update(self, changes: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Queue a change of live fields, e.g. ``update({"inner.lr": 0.01})``.

        Raises ``ConfigError`` at once for an unknown, non-live or out-of-range value.
        """
        merged = {**(changes or {}), **{k.replace("__", "."): v for k, v in fields.items()}}
        require_live(merged)
        self.config.with_updates(merged)
        self.commands.put(Update(merged))

    def pause(self) -> None:
        self.commands.put(Pause())

    def resume(self) -> None:
        self.commands.put(Resume())

    def request_step(self) -> None:
        self.commands.put(Step())

    def stop(self) -> None:
        self.commands.put(Stop())

    def request_checkpoint(self, path: str | Path) -> None:
        self.commands.put(SaveCheckpoint(str(path)))

    def request_evaluation(self) -> None:
        self.commands.put(Evaluate())

    def request_task_fit(self, command: FitTask) -> None:
        self.commands.put(command)

    def request_landscape(self) -> None:
        self.commands.put(ComputeLandscape())
