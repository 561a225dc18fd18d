#!/bin/bash
# Written by `hpsearch slurm submit`: 4 worker task(s) for study 1
# (built-in workers). Each task runs until the study has nothing left, then exits 0.
#SBATCH --job-name=hps-study-1
#SBATCH --array=0-3%2
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --mem=32G
#SBATCH --time=2:00:00
#SBATCH --partition=gpu
#SBATCH --output=hps-study-1-%A_%a.out
#SBATCH --open-mode=append
# The job inherits the submitting environment (HPS_DATABASE_URL, or HPS_URL and HPS_API_KEY).
#SBATCH --export=ALL
# Slurm sends SIGTERM to this shell 300 s before the time limit (and on scancel or
# preemption). The shell becomes the worker (exec below), which ends its trial at the next
# epoch boundary and hands the slot back. A requeued task claims whatever is left.
#SBATCH --signal=B:TERM@300
#SBATCH --requeue

exec /opt/hpsearch/bin/hpsearch worker --study 1 --exit-when-idle --threads 8 --device cuda --name "slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
