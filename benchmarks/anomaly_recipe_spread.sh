#!/usr/bin/env bash
# The default anomaly model's whole recipe (since 2026-12-07) again with another seed: the DRAEM
# pair (two members side by side, 12 minutes) retuned to score at 0.35, the PatchCore pyramid
# over its encoders, the two averaged (both decide); then the selection-set and test figures of
# it, of its pyramid alone and of the pair alone (docs/detection-anomaly.md, "Spread"), and of
# the candidate of the second session of 2026-12-07: the pair scoring at 0.25 beside the pyramid.
#   [PRECISION=auto|bf16|fp32] [MIX=surface|surface_streaks] benchmarks/anomaly_recipe_spread.sh [SEED=1] [OUT=/tmp/anom/s$SEED]
# PRECISION: the members' training precision. Default auto: bf16 where the network is measured
# faster in it here (the committed pair trained in bf16, on a CPU where it was), else fp32.
# MIX: the first member's synthetic anomalies (default surface, the committed pair's;
# surface_streaks: the candidate of the thirteenth session, docs/detection-anomaly.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:-1}
O=${2:-/tmp/anom/s$SEED}
C=${COILMAP:-.venv/bin/coilmap}
N=../shared/data/magnetic_tile/MT_Free/Imgs
mkdir -p "$O"
M="--kind draem --input-scale 0.5 --crop-px 128 --normalise --width 16 --steps 6000 --max-minutes 12 --threads 1 --precision ${PRECISION:-auto}"
date
/usr/bin/time -f "pair wall %e s" $C detect train-ensemble --normal $N --out "$O/pair.pt" \
  --member "$M --anomalies ${MIX:-surface} --score-kernel 3 --seed $SEED" \
  --member "$M --anomalies draem --score-kernel 5 --seed $SEED"
/usr/bin/time -f "rest wall %e s" bash -c "
  $C detect retune-anomaly --model '$O/pair.pt' --normal $N --out '$O/pair_at_0.35.pt' \
    --score-precision bf16 --map-sigma 2 --input-scale 0.35 --threads 2 &&
  $C detect train-anomaly --normal $N --out '$O/pyramid.pt' --kind patchcore --features '$O/pair_at_0.35.pt' \
    --pyramid-scales 0.075,0.1,0.15,0.2,0.25 --blur-sigma 8 --bank-dim 128 --coreset-size 2000 --threads 2 &&
  $C detect combine-anomaly --model '$O/pair_at_0.35.pt' --model '$O/pyramid.pt' --normal $N \
    --out '$O/default.pt' --threads 2"
$C detect retune-anomaly --model "$O/pair.pt" --normal $N --out "$O/pair_at_0.25.pt" \
  --score-precision bf16 --map-sigma 2 --input-scale 0.25 --threads 2
$C detect combine-anomaly --model "$O/pair_at_0.25.pt" --model "$O/pyramid.pt" --normal $N \
  --out "$O/with_pair_at_0.25.pt" --threads 2
for m in default pyramid pair_at_0.35 with_pair_at_0.25; do
  for a in --selection ""; do
    echo "== $m $a"
    $C detect evaluate-anomaly --model "$O/$m.pt" $a --threads 2 | grep -E '"(image|pixel)_auroc"|MT_'
  done
done
date
