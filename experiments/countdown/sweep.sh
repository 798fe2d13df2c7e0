#!/usr/bin/env bash
# Issue 26's sweeps, the experiment=sweep protocol (all 500 held-out questions, greedy and mean@4 every 10
# iterations), 60 iterations, one thread per run, JOBS runs at a time (every group shares the same load).
#   countdown: VinePPO, PPO, GRPO, RLOO x 6 seeds and VinePPO + learnability (LILO) x 3
#   arith:     VinePPO, PPO, GRPO, RLOO x 3 seeds (test against training accuracy on the first task)
# The queue goes seed by seed, so a sweep cut short still has balanced groups; a finished run
# (summary.json) is skipped and an unfinished one resumes from its last checkpoint.
#   bash experiments/countdown/sweep.sh countdown [multirun/sweep-countdown] [JOBS=3]
#   bash experiments/countdown/sweep.sh arith [multirun/sweep-arith-tt] [JOBS=3]
set -euo pipefail
TASK=${1:?usage: sweep.sh countdown|arith [DIR] [JOBS]}
R=${2:-multirun/sweep-$TASK}
JOBS=${3:-3}
PY=${PY:-.venv/bin/python}
case $TASK in
  countdown) TASK_ARGS="data=countdown model=tiny_countdown"; SEEDS="0 1 2 3 4 5"; LILO_SEEDS=3 ;;
  arith) TASK_ARGS="data=arith model=tiny"; SEEDS="0 1 2"; LILO_SEEDS=0 ;;
  *) echo "sweep.sh: unknown task $TASK" >&2; exit 2 ;;
esac
mkdir -p "$R"
queue() {
  for s in $SEEDS; do
    for a in ppo vineppo grpo rloo; do echo "$a-s$s algo=$a seed=$s"; done
    if [ "$s" -lt "$LILO_SEEDS" ]; then echo "lilo-s$s algo=vineppo curriculum=learnability seed=$s"; fi
  done
}
run_one() {
  name=$1; shift
  if [ -f "$R/$name/summary.json" ]; then echo "done already: $name"; return 0; fi
  echo "$(date +%T) start $name"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $PY -m rlreason.run experiment=sweep $TASK_ARGS trainer.iterations=60 "$@" \
    run_name="$name" hydra.run.dir="$R/$name" >"$R/$name.log" 2>&1 \
    && echo "$(date +%T) end $name" || echo "$(date +%T) FAILED $name (see $R/$name.log)"
}
export -f run_one; export R PY TASK_ARGS
queue | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
