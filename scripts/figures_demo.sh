#!/usr/bin/env bash
# make figures-demo: train what the figures need on the bundled digits (CPU, a few minutes), then draw
# every figure kind into $OUT. Usage: scripts/figures_demo.sh BIN_DIR RUNS_DIR OUT_DIR [EPOCHS]
set -euo pipefail
BIN=$1; RUNS=$2; OUT=$3; EPOCHS=${4:-15}
DIGITS=(dataset=digits sched=cosine optim.lr=0.05 trainer.batch_size=64 trainer.num_threads=1
        trainer.epochs=$EPOCHS trainer.progress=log)
train() { "$BIN/mixexp-train" -m "${DIGITS[@]}" "$@"; }
run() { ls -d "$RUNS"/$1 | head -n 1; }  # one run folder of a sweep, by a glob of its overrides

train model=simplecnn method=erm,mixup,cutmix,lamix seed=0,1 hydra.sweep.dir="$RUNS/methods"
train model=simplecnn method=lamix mixer.lamix_beta=0.1,0.5,0.9 seed=0,1 hydra.sweep.dir="$RUNS/beta"
train model=simplecnn method=mixup_sem seed=0 hydra.sweep.dir="$RUNS/sem"
# LaMix Fig 8 on all 10 digit classes (the paper: 3 CIFAR-10 classes), weights kept after epochs 1 and 5
train model=bottleneck model@model.backbone=simplecnn method=erm,mixup,lamix seed=0 "trainer.snapshot_epochs=[1,5]" \
      hydra.sweep.dir="$RUNS/bottleneck"
# LaMix records its soft targets every 3 epochs (mixer.lamix_record_every) into soft_targets.csv
train model=simplecnn method=lamix mixer.lamix_record_every=3 seed=0 hydra.sweep.dir="$RUNS/soft_targets"

ERM=$(run "methods/*method=erm,*seed=0,*"); MIXUP=$(run "methods/*method=mixup,*seed=0,*")
CUTMIX=$(run "methods/*method=cutmix,*seed=0,*"); LAMIX=$(run "methods/*method=lamix,*seed=0,*")
"$BIN/mixexp-plot" curves "$RUNS/methods" --out "$OUT"
"$BIN/mixexp-plot" fig5 "$LAMIX" --out "$OUT"
"$BIN/mixexp-plot" reliability "$ERM" "$MIXUP" --out "$OUT"
"$BIN/mixexp-report" "$RUNS/methods" --out "$OUT" > /dev/null
"$BIN/mixexp-plot" bars "$OUT/report.csv" --out "$OUT"
"$BIN/mixexp-plot" beta-sweep "$RUNS/beta" --out "$OUT"
"$BIN/mixexp-plot" soft-targets "$(run "soft_targets/*")" --out "$OUT"
"$BIN/mixexp-plot" gradcam "$LAMIX" "$MIXUP" "$CUTMIX" --images 6 --out "$OUT"
"$BIN/mixexp-plot" bottleneck "$RUNS"/bottleneck/*/ --out "$OUT"
"$BIN/mixexp-plot" umap "$MIXUP" "$(run "sem/*")" --out "$OUT"
echo "figures in $OUT"
