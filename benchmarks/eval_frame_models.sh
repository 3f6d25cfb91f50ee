#!/bin/bash
# The demo plant's stations with given frame models, against its ground truth
# (docs/detection-plant-frames.md):
#   benchmarks/eval_frame_models.sh PLANT_DIR WORK_DIR ANOMALY.pt CLASSIFIER.pt FUSED.pkl
# writes `coilmap ingest config --from-plant PLANT_DIR` with those three files in [detector] and
# [fusion], ingests every line once into a fresh SQLite file in WORK_DIR and prints
# `coilmap eval plant` (fused classes), then the same without fusion (the stations' own classes).
set -euo pipefail
if [ $# -ne 5 ]; then
  echo "usage: $0 PLANT_DIR WORK_DIR ANOMALY.pt CLASSIFIER.pt FUSED.pkl" >&2
  exit 2
fi
plant=$1; work=$2
mkdir -p "$work"
url="sqlite:///$(cd "$work" && pwd)/coilmap.sqlite"
rm -f "$work/coilmap.sqlite"
coilmap ingest config --from-plant "$plant" --out "$work/cfg.toml" --image-root "$work/images" > /dev/null
python - "$work/cfg.toml" "$(realpath "$3")" "$(realpath "$4")" "$(realpath "$5")" <<'PY'
import re
import sys

path, anomaly, classifier, fused = sys.argv[1:]
text = open(path, encoding="utf-8").read()
text = re.sub(r"\n\[detector\]\n(anomaly_model = .*\n)?(classifier_model = .*\n)?", "\n", text)
text = re.sub(r"\n\[fusion\]\nmodel = .*\n", "\n", text)
tables = (f'\n[detector]\nanomaly_model = "{anomaly}"\nclassifier_model = "{classifier}"\n\n'
          f'[fusion]\nmodel = "{fused}"\n\n[[lines]]')
open(path, "w", encoding="utf-8").write(text.replace("\n[[lines]]", tables, 1))
PY
coilmap db upgrade --url "$url" > /dev/null
lines=$(python -c "import sys, tomllib; c = tomllib.load(open(sys.argv[1], 'rb')); print(' '.join('--line ' + x for x in dict.fromkeys(s['line'] for s in c['stations'])))" "$work/cfg.toml")
# shellcheck disable=SC2086
coilmap ingest --config "$work/cfg.toml" --db "$url" --once $lines > "$work/ingest.log" 2>&1
coilmap eval plant "$plant" --url "$url"
python - "$url" "$plant" <<'PY'
import sys

from coilmap.db import make_engine
from plant.db_mapping import mapped_observations
from plant.evaluate import evaluate
from plant.truth import read_truth

print("\nwithout fusion (the stations' own classes):")
table = mapped_observations(make_engine(sys.argv[1]), use_fused=False)
print(evaluate(table, read_truth(sys.argv[2])).text())
PY
