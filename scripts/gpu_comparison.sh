#!/usr/bin/env bash
# The one script a user with a GPU runs: the GPU benchmark and the GPU-scale PriorGrad vs DiffWave
# comparison (base and small networks, both priors, all trials at once on the one GPU).
#
#   scripts/gpu_comparison.sh --features data/features --stats data/prior_stats.json   # features made elsewhere
#   scripts/gpu_comparison.sh --wheels wheels/ --corpus-n 3000                         # make the corpus here
#
# Options:
#   --features DIR --stats FILE  precomputed features (priorgrad preprocess / prior-stats), e.g. carried
#   --wheels DIR                 wheels of espeakng-loader and soundfile (+ their deps): the synthetic
#                                corpus is then made and preprocessed on this machine (under --out)
#   --corpus-n N                 utterances of that corpus (default: corpus.n_utterances of params.yaml --set profile=gpu)
#   --phase all|bench|train|pack all (default), or one phase: a machine that limits a command to minutes
#                                runs them as separate calls; re-running `train` resumes every trial
#   --steps N --deadline-s S     training budget of each trial, and the wall-clock stop of one train call
#   --out DIR                    work dir (default runs/gpu_comparison); --bring-back DIR: the files that
#                                go back for evaluation (default \$OUT when set, else OUT_DIR/bring_back)
#   --dry-run                    print what would run; run nothing
# Then, on the machine with the evaluation stack:
#   python -m experiments.gpu_comparison import --from BRING_BACK --out runs/gpu_comparison/sweep
#   python -m experiments.evaluate --params params.yaml --set profile=gpu --features data/features \
#       --sweep runs/gpu_comparison/sweep --out runs/gpu_comparison/eval
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES="" STATS="" WHEELS="" CORPUS_N="" PHASE=all STEPS=20000 DEADLINE=540 DRY=0
OUT_DIR=runs/gpu_comparison BRING="${OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --features) FEATURES=$2; shift 2 ;;
    --stats) STATS=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --corpus-n) CORPUS_N=$2; shift 2 ;;
    --phase) PHASE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --deadline-s) DEADLINE=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --bring-back) BRING=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "gpu_comparison.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PHASE" in all|bench|train|pack) ;; *) echo "gpu_comparison.sh: --phase must be all|bench|train|pack, got $PHASE" >&2; exit 2 ;; esac
BRING=${BRING:-$OUT_DIR/bring_back}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

run() {  # print, then run unless --dry-run
  echo "+ $*"
  if [ "$DRY" = 0 ]; then "$@"; fi
}

if [ -z "$FEATURES" ]; then
  if [ -z "$WHEELS" ]; then
    echo "gpu_comparison.sh: give --features DIR --stats FILE, or --wheels DIR to make the corpus here" >&2; exit 2
  fi
  FEATURES=$OUT_DIR/features STATS=$OUT_DIR/prior_stats.json
  if [ ! -f "$FEATURES/manifest.jsonl" ]; then
    run "$PY" -m pip install --no-index --find-links "$WHEELS" --target .gpu_deps espeakng-loader soundfile
    export PYTHONPATH="$PYTHONPATH:$PWD/.gpu_deps"
    run "$PY" -m priorgrad corpus make --params params.yaml --set profile=gpu --out "$OUT_DIR/corpus" ${CORPUS_N:+--n "$CORPUS_N"}
    run "$PY" -m priorgrad preprocess --params params.yaml --set profile=gpu --corpus "$OUT_DIR/corpus" --out "$FEATURES"
    run "$PY" -m priorgrad prior-stats --params params.yaml --set profile=gpu --features "$FEATURES" --out "$STATS"
  fi
elif [ -z "$STATS" ]; then
  echo "gpu_comparison.sh: --features needs --stats (priorgrad prior-stats --features DIR --out FILE)" >&2; exit 2
fi

if [ "$DRY" = 0 ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_comparison.sh: CUDA is not available here')"
  mkdir -p "$BRING"
fi

if [ "$PHASE" = all ] || [ "$PHASE" = bench ]; then
  # the benchmark JSONs are small: they go back with the checkpoints
  run "$PY" benchmarks/bench_gpu.py --device cuda --size base --features "$FEATURES" --out "$BRING/bench_gpu_base.json"
  run "$PY" benchmarks/bench_gpu.py --device cuda --size small --features "$FEATURES" --skip batched \
      --out "$BRING/bench_gpu_small.json"
fi
if [ "$PHASE" = all ] || [ "$PHASE" = train ] || [ "$PHASE" = pack ]; then
  PACK=(); [ "$PHASE" = pack ] && PACK=(--pack-only)
  run "$PY" -m experiments.gpu_comparison run --features "$FEATURES" --stats "$STATS" --out "$OUT_DIR" \
      --bring-back "$BRING" --steps "$STEPS" --deadline-s "$DEADLINE" "${PACK[@]}"
fi
