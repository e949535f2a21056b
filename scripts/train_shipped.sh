#!/usr/bin/env bash
# Long training runs behind the shipped checkpoints; safe to re-run: each run resumes from its last checkpoint.
#   scripts/train_shipped.sh ve|ct|cd|ct-small|cd-small   (one run per call; start them in the background with nohup)
# ve, ct, cd: widths 16,32,32; ct-small, cd-small: widths 8,16,16 (≈ 4× fewer FLOPs per jet, for sampling speed);
# cd-small distils the 16,32,32 ve-sde teacher into the small student.
# Run state (model, EMA, AdamW as safetensors, state.json, loss.csv) lives in $JETVIZ_RUNS, by default
# checkpoints/runs/<name>, which is committed (≈ 4 MB a run) so a later session on a fresh clone resumes
# bit-for-bit; the EMA weights are exported to checkpoints/<name>/ at every checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${JETVIZ_RUNS:-checkpoints/runs}
DATA=${JETVIZ_TRAIN_DATA:-work/train10k}
STEPS=${STEPS:-20000}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
CHANNELS=16,32,32
case "${1:-}" in
  ct-small) name=cm-ct-small; CHANNELS=8,16,16; args=(--kind consistency-ct) ;;
  cd-small) name=cm-cd-small; CHANNELS=8,16,16; args=(--kind consistency-cd --teacher checkpoints/ve-sde --cd-scales 40) ;;
  ve) name=ve-sde; args=(--kind ve-sde) ;;
  ct) name=cm-ct;  args=(--kind consistency-ct) ;;
  cd) name=cm-cd;  args=(--kind consistency-cd --teacher checkpoints/ve-sde --cd-scales 40) ;;
  *) echo "usage: $0 ve|ct|cd|ct-small|cd-small" >&2; exit 2 ;;
esac
common=(--data "$DATA" --split all --steps "$STEPS" --batch-size 64 --lr 2e-4 --channels "$CHANNELS"
        --layers-per-block 1 --checkpoint-every 50 --seed 0)
# the training set (not committed): regenerate it, byte-identical, when a fresh clone lacks it
if [ ! -f "$DATA/z.hdf5" ]; then
  nice python -m jetviz simulate --jet-type all --n-jets 10000 --seed 2 --workers 2 --out "$DATA"
fi
resume=(); [ -f "$RUNS/$name/state/state.json" ] && resume=(--resume)
# EXPORT_ONLY=1: rewrite checkpoints/<name> from the saved state (e.g. after the job was killed), no training
[ -n "${EXPORT_ONLY:-}" ] && resume+=(--export-only)
exec nice python -m jetviz train "${args[@]}" "${common[@]}" --run "$RUNS/$name" --export checkpoints/$name "${resume[@]}"
