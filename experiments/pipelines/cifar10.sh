#!/bin/sh
# The CIFAR-10 evidence of experiments/README.md, end to end (~1 h on a quiet 2-core machine).
# Every step continues where it stopped when the script is rerun.
#
#     sh experiments/pipelines/cifar10.sh [PATH/cifar10-jpg.tar.gz]
set -e
DATA=${1:-../shared/data/cifar10-jpg.tar.gz}
NAS=.venv/bin/nas
PY=.venv/bin/python
SN=runs/sn-cifar-800

# 1. a supernet trained 800 sandwich steps on CIFAR-10 (as runs/sn-800 on Fashion-MNIST)
if [ -f $SN/supernet.pt ]; then
    $NAS supernet train -o $SN --resume
else
    $NAS supernet train --data "$DATA" -o $SN --steps 800
fi
# 2. controllers vs random: 3 x 3 searches of 50 trials at 300M on that supernet
$PY experiments/studies/controllers/run.py --supernet $SN/supernet.pt --data "$DATA" \
    --runs runs/controllers-cifar
# 3. what TPE found (seed 0) vs MixNet-S/M, retrained alike: 1 epoch, 3 seeds, test split
$PY experiments/studies/retrain_compare/run.py --run runs/controllers-cifar/tpe-reward-seed0 --data "$DATA" \
    --epochs 1 --out runs/retrain-cifar-sn800
# 4. rank correlation: 30 archs at 240-300M, standalone 150 steps on 10,000 images
$NAS diagnose runs/controllers-cifar/tpe-reward-seed0 -o runs/diagnose-cifar-sn800 \
    --archs 30 --steps 150 --batch-size 64 --train-subset 10000
cp runs/diagnose-cifar-sn800/diagnose.csv experiments/studies/rank_factors/diagnose_cifar10_sandwich-800.csv
# 5. what training length does on CIFAR-10: a 2400-step supernet (3x) scored on the same 30
#    archs; the standalone results are copied from step 4 (same recipe, seed and split)
SN3=runs/sn-cifar-2400
if [ -f $SN3/supernet.pt ]; then
    $NAS supernet train -o $SN3 --resume
else
    $NAS supernet train --data "$DATA" -o $SN3 --steps 2400
fi
[ -f runs/search-cifar-sn2400/config.json ] || $NAS search --budget 300M --trials 1 \
    --supernet $SN3/supernet.pt --data "$DATA" -o runs/search-cifar-sn2400
mkdir -p runs/diagnose-cifar-sn2400
cp -R runs/diagnose-cifar-sn800/archs runs/diagnose-cifar-sn2400/
$NAS diagnose runs/search-cifar-sn2400 -o runs/diagnose-cifar-sn2400 \
    --archs 30 --steps 150 --batch-size 64 --train-subset 10000
cp runs/diagnose-cifar-sn2400/diagnose.csv experiments/studies/rank_factors/diagnose_cifar10_sandwich-2400.csv
# 6. steps 2 and 3 again on the 2400-step supernet (results tagged sn2400); MixNet-S/M do not
#    depend on the supernet, so their trainings are copied from step 3
$PY experiments/studies/controllers/run.py --supernet $SN3/supernet.pt --data "$DATA" \
    --runs runs/controllers-cifar-sn2400 --tag sn2400
mkdir -p runs/retrain-cifar-sn2400/cifar10-jpg-1ep-0px
cp -R runs/retrain-cifar-sn800/cifar10-jpg-1ep-0px/mixnet_* runs/retrain-cifar-sn2400/cifar10-jpg-1ep-0px/
$PY experiments/studies/retrain_compare/run.py --run runs/controllers-cifar-sn2400/tpe-reward-seed0 \
    --data "$DATA" --epochs 1 --out runs/retrain-cifar-sn2400 --tag sn2400
