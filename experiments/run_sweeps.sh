#!/usr/bin/env bash
# The sweeps of issues 26 and 25, the experiment=sweep protocol (all 500 held-out questions, greedy and
# mean@4 every 10 iterations), 60 iterations, one thread per run, JOBS runs at a time (every group shares
# the same load). The queue goes seed by seed, so a sweep cut short still has balanced groups; a finished
# run (summary.json) is skipped and an unfinished one resumes from its last checkpoint.
#   countdown: VinePPO, PPO, GRPO, RLOO x 6 seeds and VinePPO + learnability (LILO) x 3   (issue 26)
#   arith:     PPO and VinePPO, then GRPO and RLOO, x 3 seeds: test against training accuracy (issue 26)
#   async:     VinePPO and GRPO x trainer.async_level 0 / 1 x 6 seeds on arith (issue 25); the level-0
#              runs of seeds 0-2 are arith's (same dir, same names)
#              (SEEDS="6 7 8" ALGOS=vineppo: other seeds or algorithms of the async sweep)
#   guess:     VinePPO, PPO, GRPO x 6 seeds on the hidden-number game, multi-turn (issue 35 §4: data=guess,
#              model=tiny_guess, env.cls=rlreason.envs.guess:GuessNumber; docs/guess.md)
#   bash experiments/run_sweeps.sh countdown|arith|async|guess [DIR] [JOBS=3]
set -euo pipefail
TASK=${1:?usage: run_sweeps.sh countdown|arith|async|guess [DIR] [JOBS]}
JOBS=${3:-3}
PY=${PY:-.venv/bin/python}
queue() {
  case $TASK in
    countdown) for s in 0 1 2 3 4 5; do
                 for a in ppo vineppo grpo rloo; do echo "$a-s$s algo=$a seed=$s"; done
                 if [ "$s" -lt 3 ]; then echo "lilo-s$s algo=vineppo curriculum=learnability seed=$s"; fi
               done ;;
    arith) for a in "ppo vineppo" "grpo rloo"; do  # the paper's pair first
             for s in 0 1 2; do for b in $a; do echo "$b-s$s algo=$b seed=$s"; done; done
           done ;;
    guess) for s in 0 1 2 3 4 5; do
             for a in vineppo ppo grpo; do echo "$a-s$s algo=$a seed=$s"; done
           done ;;
    async) for s in ${SEEDS:-0 1 2 3 4 5}; do
             for a in ${ALGOS:-vineppo grpo}; do
               echo "$a-s$s algo=$a seed=$s"
               echo "$a-async-s$s algo=$a seed=$s trainer.async_level=1"
             done
           done ;;
    *) echo "run_sweeps.sh: unknown sweep $TASK" >&2; exit 2 ;;
  esac
}
case $TASK in
  countdown) R=${2:-multirun/sweep-countdown}; TASK_ARGS="data=countdown model=tiny_countdown" ;;
  # experiment=guess's settings (experiment=sweep is the one experiment a run takes)
  guess) R=${2:-multirun/sweep-guess}
         TASK_ARGS="data=guess model=tiny_guess env.cls=rlreason.envs.guess:GuessNumber env.max_turns=6 rollout.max_new_tokens=200" ;;
  *) R=${2:-multirun/sweep-arith}; TASK_ARGS="data=arith model=tiny" ;;
esac
mkdir -p "$R"
run_one() {
  name=$1; shift
  if [ -f "$R/$name/summary.json" ]; then echo "done already: $name"; return 0; fi
  # Two invocations on one dir share the queue: a run another one is running is skipped (a lock left by a
  # killed invocation is removed by hand: rmdir DIR/NAME.lock).
  if ! mkdir "$R/$name.lock" 2>/dev/null; then echo "running elsewhere: $name"; return 0; fi
  trap 'rmdir "$R/$name.lock"' RETURN
  echo "$(date +%T) start $name"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $PY -m rlreason.run experiment=sweep $TASK_ARGS trainer.iterations=60 "$@" \
    run_name="$name" hydra.run.dir="$R/$name" >"$R/$name.log" 2>&1 \
    && echo "$(date +%T) end $name" || echo "$(date +%T) FAILED $name (see $R/$name.log)"
}
export -f run_one; export R PY TASK_ARGS
queue | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
