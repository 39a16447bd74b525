#!/bin/sh
# The CIFAR-10 evidence of experiments/README.md, end to end (~2.5 h on 2 cores).
# Every step continues where it stopped when the script is rerun.
#
#     sh experiments/cifar10.sh [PATH/cifar10-jpg.tar.gz]
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
$PY experiments/compare_controllers.py --supernet $SN/supernet.pt --data "$DATA" \
    --runs runs/controllers-cifar
# 3. what TPE found (seed 0) vs MixNet-S/M, retrained alike: 1 epoch, 3 seeds, test split
$PY experiments/retrain_compare.py --run runs/controllers-cifar/tpe-reward-seed0 --data "$DATA" \
    --epochs 1 --out runs/retrain-cifar-sn800
# 4. rank correlation: 30 archs at 240-300M, standalone 150 steps on 10,000 images
$NAS diagnose runs/controllers-cifar/tpe-reward-seed0 -o runs/diagnose-cifar-sn800 \
    --archs 30 --steps 150 --batch-size 64 --train-subset 10000
cp runs/diagnose-cifar-sn800/diagnose.csv experiments/results/diagnose_cifar10_sandwich-800.csv
