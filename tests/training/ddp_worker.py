"""One torchrun process of ``test_distributed``: trains a tiny recipe for a few steps, then saves this rank's
weights and what it saw. Usage: ``torchrun --nproc_per_node=2 ddp_worker.py RECIPE OUT``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    import torch
    from safetensors.torch import save_file

    from training.config import load_recipe
    from training.loop import Trainer

    torch.set_num_threads(1)
    recipe_path, out = argv
    recipe = load_recipe(
        recipe_path, [f"train.out={out}/run", "train.max_steps=3", "train.epochs=1", "train.eval_set=none"]
    )
    trainer = Trainer(recipe)
    rank = trainer.ctx.rank
    initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    seen: dict[str, list] = {"pairs": [], "sim": []}
    make_batch, task_forward = trainer._make_batch, trainer.task.forward

    def record_batch(idx, rng):
        seen["pairs"].extend(int(i) for i in idx)
        return make_batch(idx, rng)

    def record_sim(sim, *args, **kwargs):
        seen["sim"].append(list(sim.shape))
        return task_forward(sim, *args, **kwargs)

    trainer._make_batch = record_batch  # type: ignore[method-assign]
    trainer.task.forward = record_sim  # type: ignore[method-assign]
    result = trainer.fit()
    save_file(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{out}/rank{rank}.safetensors"
    )
    if rank == 0:
        save_file({k: v.contiguous() for k, v in initial.items()}, f"{out}/initial.safetensors")
    Path(f"{out}/rank{rank}.json").write_text(
        json.dumps({**seen, "world": trainer.ctx.world, "steps": result.steps})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
