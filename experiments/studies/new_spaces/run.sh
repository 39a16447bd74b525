#!/bin/bash
# Short searches on the three new spaces, then nas report, a backbone export of the best trial
# and its check at 224x224 and 256x320 (ONNX against model.py). Usage: sh run.sh [OUT_DIR]
cd "$(dirname "$0")/../../.."
N=.venv/bin/nas
OUT=${1:-runs/new_spaces}
for spec in "mobilenetv3_mixconv 200M reward 100 30" "mobilenetv4_uib 190M reward 50 20" "convmixer_mix 5G pareto 20 10"; do
  set -- $spec
  run=$OUT/$1-short
  echo "=== $1 budget $2 objective $3 supernet-steps $4 trials $5  $(date +%T)"
  /usr/bin/time -f "search wall %e s" $N search --space $1 --budget $2 --objective $3 --trials $5 --supernet-steps $4 -o $run 2>&1 | tail -9
  $N report $run 2>&1 | tail -3
  rm -rf $OUT/$1-backbone
  $N export $run --best --backbone -o $OUT/$1-backbone 2>&1 | tail -2
  PYTHONPATH=. .venv/bin/python experiments/studies/new_spaces/check_backbone.py $OUT/$1-backbone 2>&1 | tail -2
done
echo "=== done $(date +%T)"
