"""Where a GRPO optimiser step's time goes on this machine: sampling (the engine rollout), the judges'
rewards, and the rest (TRL's forward and backward over the completions, the optimiser).

    python bench/grpo_step.py [--prompts-per-step 2] [--steps 2] [--budget 96] [--answer 96] [--sampler auto]
                              [--micro-batch N] [--checkpointing on|off] [--out DIR]

Runs ``--steps`` real steps of ``--recipe grpo`` (the main job's code: pools, judges, TRL's GRPOTrainer,
LoRA) on the default model; prints one row a step and the per-completion seconds of each part.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import thinksafe.align.grpo as grpo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--budget", type=int, default=96)
    ap.add_argument("--answer", type=int, default=96)
    ap.add_argument("--sampler", default="auto", help="the engine rollout's backend: auto | vllm | transformers")
    ap.add_argument("--micro-batch", type=int, default=None, help="completions a forward (default: the whole step)")
    ap.add_argument("--checkpointing", choices=("on", "off"), default=None, help="gradient checkpointing (default: GRPO's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"rollout": [], "reward": [], "step": []}
    real_rollout, real_rewards = grpo.engine_rollout, grpo.reward_functions

    def timed(kind, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                times[kind].append(time.perf_counter() - t)
        wrapper.__name__ = getattr(fn, "__name__", kind)
        return wrapper

    grpo.engine_rollout = lambda *a, **kw: timed("rollout", real_rollout(*a, **kw))
    grpo.reward_functions = lambda *a, **kw: [timed("reward", f) for f in real_rewards(*a, **kw)]
    from trl import GRPOTrainer

    GRPOTrainer.training_step = timed("step", GRPOTrainer.training_step)
    from thinksafe.align.run import AlignConfig, run_stage

    half = args.prompts_per_step * args.steps // 2
    cfg = AlignConfig(recipe="grpo", harmful_size=half, benign_size=args.prompts_per_step * args.steps - half, epochs=1.0,
                      grpo={"prompts_per_step": args.prompts_per_step, "thinking_budget": args.budget,
                            "max_new_tokens": args.answer, "rollout_backend": args.sampler,
                            "micro_batch": args.micro_batch})
    if args.checkpointing is not None:  # not an AlignConfig field: the bench sets it on the recipe's TrainConfig
        from dataclasses import replace

        real_train_config = AlignConfig.train_config
        AlignConfig.train_config = lambda self: replace(real_train_config(self),
                                                        gradient_checkpointing=args.checkpointing == "on")
    out = args.out or tempfile.mkdtemp(prefix="grpo-bench-")
    t = time.perf_counter()
    run_stage("all", out, cfg, progress=False)
    total = time.perf_counter() - t
    n = args.prompts_per_step * 4
    per_step = n // (args.micro_batch or n)  # TRL's training_step runs once a micro-batch
    steps = [sum(times["step"][i:i + per_step]) for i in range(0, len(times["step"]), per_step)]
    print(f"sampler {args.sampler}, prompts a step {args.prompts_per_step} (completions {n}, {per_step} micro-batches), "
          f"checkpointing {args.checkpointing or 'default'}, budget {args.budget}+{args.answer}, "
          f"{args.steps} steps, total {total:.0f} s (model loading included)")
    print("| step | whole step s | rollout s | rewards s | the rest (forward, backward, optimiser) s |")
    for i, (s, r) in enumerate(zip(steps, times["rollout"])):
        rew = sum(times["reward"][2 * i:2 * i + 2])
        print(f"| {i} | {s:.1f} | {r:.1f} | {rew:.1f} | {s - r - rew:.1f} |")
    k = n * len(steps)
    step, roll, rew = sum(steps), sum(times["rollout"]), sum(times["reward"])
    print(f"per completion: whole {step / k:.2f} s, rollout {roll / k:.2f} s, rewards {rew / k:.2f} s, "
          f"rest {(step - roll - rew) / k:.2f} s")


if __name__ == "__main__":
    main()
