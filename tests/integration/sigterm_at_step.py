"""``python -m whitebox ...`` that sends itself SIGTERM right after its N-th optimiser step.

N is the environment variable WHITEBOX_SIGTERM_AT_STEP (counted over the whole process, all
epochs: step k of epoch e is ``(e - 1) * steps_per_epoch + k``). The signal is delivered as
SLURM's would be, but at a known step whatever the machine's speed, so a test can stop a
training job mid-epoch without polling and sleeping. Usage, with ``src`` on PYTHONPATH:

    WHITEBOX_SIGTERM_AT_STEP=40 python tests/integration/sigterm_at_step.py train --spec ...
"""

from __future__ import annotations

import os
import signal
import sys

from torch.optim.optimizer import register_optimizer_step_post_hook

from whitebox import cli

AT_STEP = "WHITEBOX_SIGTERM_AT_STEP"


def main() -> None:
    at = int(os.environ[AT_STEP])
    steps = 0

    def after_step(optimizer, args, kwargs) -> None:
        nonlocal steps
        steps += 1
        if steps == at:
            os.kill(os.getpid(), signal.SIGTERM)

    register_optimizer_step_post_hook(after_step)
    raise SystemExit(cli.main(sys.argv[1:]))


if __name__ == "__main__":
    main()
