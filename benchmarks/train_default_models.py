"""Train the model shipped with the package (``--init learned`` without a file), as anyone can redo it.

    python benchmarks/train_default_models.py --dim 2            # writes cdi_dip/learned/models/default_2d.pt
    python benchmarks/train_default_models.py --dim 2 --steps 20 --out /tmp/check.pt   # a quick check

The settings below are the shipped model's; the model file itself records
them, its training time and its validation history (``cdi-dip train`` writes
them), and docs/learned.md gives the figures. Training samples come from the
corpus's training seeds (``cdi_dip.corpus.split.TRAINING_SEEDS``), the
tuning half's families and the conditions whose mask tells the truth; the
reporting half's seeds and its three held-out families are never seen.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from common import limit_threads, machine_description

from cdi_dip.learned.files import without_training_state
from cdi_dip.learned.initialiser import DEFAULT_MODELS, MODELS_DIR
from cdi_dip.learned.training import TrainConfig, train

SHIPPED = {
    2: TrainConfig(dim=2, size=64, width=16, depth=3, loss="passive", steps=400, batch=16, learning_rate=2e-3,
                   pool=512, reuse=2, validation=32, checkpoint_every=50, seed=0),
}
"""The shipped models' training settings, by dimensionality."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2, choices=sorted(SHIPPED))
    parser.add_argument("--steps", type=int, default=None, help="fewer steps for a check (default: the shipped)")
    parser.add_argument("--out", type=Path, default=None, help="model file (default: the shipped model's path)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted training stored in --out (a finished one has no optimiser state)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    limit_threads(args.threads)
    cfg = SHIPPED[args.dim]
    if args.steps is not None:
        cfg.steps = args.steps
    out = args.out or MODELS_DIR / DEFAULT_MODELS[args.dim]
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def progress(p: dict) -> None:
        if "passive_loss" in p:
            print(json.dumps(p), flush=True)

    summary = train(out, cfg, resume=args.resume, on_progress=progress)
    if not summary["interrupted"]:
        without_training_state(out)  # the shipped file: weights and record only (a few MB)
    print(json.dumps({**summary, "machine": machine_description(),
                      "wall_s": round(time.perf_counter() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()
