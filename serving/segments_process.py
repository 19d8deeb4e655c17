"""Live segments and webhook queuing in a child process, so their runs never hold the serving process's interpreter.

A hook run (`serving.segments_live.SegmentHook`: consent state, the champions' scores of every customer touched
since the last run, segment evaluation, entry/exit events appended and queued for webhooks) holds the
interpreter for ~15 ms a second at 1,000 events/s. In the serving process the applier then gets the
interpreter back only every switch interval, and the requests whose events it is applying wait: the slow
requests of the real-time benchmark came at the hooks' phase of each second (every 3 s with the hooks every
3 s). `SegmentProcess` is the engine's hook in the parent: it takes what a run needs (`HookRun`: the consent
statements, merges and touched customers of each batch, the feature rows the applier computed), hands it to
``python -m serving.segments_process`` (`contract.child`) and waits for the answer with the interpreter
released, so ``wait=settled`` still means "segments and webhooks have seen it".

The child holds the live segment state, the champions and the webhook deliverer; the parent reads segment
membership from the workspace's segment store, which both write and read under its file lock. If the child
dies, the parent runs the hook in-process from then on (its state is reloaded from the store).
"""

from __future__ import annotations

import gc
import logging
import pickle
from typing import TYPE_CHECKING

from contract.child import Child, ChildError, Handler, exit_now, serve
from serving.segments_live import Compute, HookRun, SegmentHook

if TYPE_CHECKING:
    from contract.settings import Settings
    from serving.realtime import AppliedBatch

log = logging.getLogger(__name__)


class SegmentProcess:
    """The engine's hook that runs `SegmentHook` in a child process (in-process once the child is gone)."""

    def __init__(self, settings: Settings, compute: Compute, *, answer_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.compute = compute
        self.child = Child(
            "serving.segments_process",
            settings,
            what="live segments process",
            answer_timeout_s=answer_timeout_s,
        )
        self.fallback: SegmentHook | None = None
        self.off: str | None = None  # why live segments are off (the child could not start them)

    def wait_ready(self) -> bool:
        """Wait for the child's set-up (its imports, the segment state): a service is ready once its segments
        are, and the first run then carries no backlog. False (and live segments off) when it failed."""
        try:
            self.child.wait_ready()
        except ChildError as exc:
            self._turn_off(exc)
        return self.off is None

    def _turn_off(self, exc: ChildError) -> None:
        self.off = str(exc)
        log.warning("live segments off: %s", exc)

    def __call__(self, batches: list[AppliedBatch]) -> None:
        if self.off is not None:
            return
        run = HookRun.of(batches, self.compute)
        if self.fallback is None:
            try:
                self.child.request(pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL))
                return
            except ChildError as exc:
                if not self.child.started:  # its set-up failed: in-process would fail the same way
                    self._turn_off(exc)
                    return
                if self.child.alive:  # it answered an error: this run failed, the child goes on
                    raise
                log.warning("%s; live segments run in-process from now on", exc)
                self.fallback = SegmentHook.open(self.settings)
        self.fallback.run(run)

    def close(self) -> None:
        """Let the child finish its last run and stop its webhook deliverer."""
        self.child.close(timeout=30.0)
        if self.fallback is not None:
            self.fallback.close()


def _start(settings: Settings, hooks: list[SegmentHook]) -> Handler:
    hook = SegmentHook.open(settings)
    hooks.append(hook)
    gc.freeze()  # the imports' objects (MLflow, LightGBM): full collections need not walk them
    return lambda body: hook.run(pickle.loads(body))


def main() -> None:
    """The child's entry point."""
    hooks: list[SegmentHook] = []
    code = 1
    try:
        code = serve(lambda settings: _start(settings, hooks), name="cxi-segments")
    finally:
        for hook in hooks:
            hook.close()  # the deliverer stops; the outbox keeps what it has not delivered
        exit_now(code)


if __name__ == "__main__":
    main()
