"""What run.json says about a run, typed: ``RunInfo`` (id, status, pid, created_at, config, results).

``RunDir.info()`` reads it; ``RunInfo.from_dict(data).to_dict() == data`` (every key kept, in order), so the
file written from a RunInfo is the same JSON. The statuses are ``STATUSES``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: What run.json's ``status`` may say (``status.run_state`` reads a dead ``running`` as ``interrupted``).
STATUSES = ("created", "running", "done", "failed", "stopped", "interrupted")
#: The keys ``RunInfo`` has fields for; every other key of run.json is a result or a fact kept in ``results``.
_FIELDS = ("id", "status", "pid", "created_at", "config")


@dataclass(frozen=True)
class RunInfo:
    """run.json: the run's id, status, owning process, creation time, training configuration, and the rest
    (model, paths, timings, eval losses, knowledge score, …) in ``results`` under their own keys."""

    id: str
    status: str = "created"
    pid: int | None = None
    created_at: float | None = None  # unix time the run directory was made
    config: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the run ended for good (done) rather than being resumable."""
        return self.status == "done"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        pid = data.get("pid")
        created = data.get("created_at")
        return cls(id=str(data.get("id") or ""), status=str(data.get("status") or "created"),
                   pid=None if pid is None else int(pid), created_at=None if created is None else float(created),
                   config=copy.deepcopy(dict(data.get("config") or {})),
                   results={k: copy.deepcopy(v) for k, v in data.items() if k not in _FIELDS},
                   keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """run.json's dict: the keys read, in their order (new ones after)."""
        own: dict[str, Any] = {"id": self.id, "status": self.status, "pid": self.pid, "created_at": self.created_at,
                               "config": copy.deepcopy(dict(self.config))}
        order = list(self.keys) or [k for k in _FIELDS if own[k] not in (None, {})]
        order += [k for k in self.results if k not in order]
        return {k: own[k] if k in _FIELDS else copy.deepcopy(self.results[k]) for k in order
                if k in _FIELDS or k in self.results}
