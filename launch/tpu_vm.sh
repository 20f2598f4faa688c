#!/bin/bash
# Cloud TPU VM pod slice: the same command on every worker.
#
#   launch/tpu_vm.sh TPU_NAME ZONE configs/cv.py gs://bucket/runs/cv [--config.data.root=/data/cv ...]
#
# Expects this checkout with its .venv (pip install -e . 'jax[tpu]') at
# ~/cvrl on every worker, and the dataset (with its prepared caches) on a
# disk or filesystem every worker reads at the same path. On TPU VMs
# jax.distributed.initialize() (cvrl.train --distributed) finds the
# coordinator and process ids itself. The workdir should be shared
# storage (GCS) so that every host writes its part of the checkpoints.
set -euo pipefail
name=${1:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [train flags]}
zone=${2:?zone}
config=${3:?config}
workdir=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all --command \
  "cd ~/cvrl && .venv/bin/python -m cvrl.train --distributed --config=$config --workdir=$workdir $*"
