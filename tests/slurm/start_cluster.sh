#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests (run as root; Debian 12).
#
#   tests/slurm/start_cluster.sh          install what is missing, write the config, start
#
# Idempotent: installs nothing that is there, restarts nothing that answers. Partitions
# `cpu` (default) and `gpu` on the one node, which announces two fake GPUs (GRES backed
# by plain files) so that `--gpus` requests are accepted; jobs see SLURM_GPUS_ON_NODE but
# no CUDA device, so torch stays on the CPU. Accounting is off: Snakemake must watch jobs
# with `--slurm-status-command squeue`, and MinJobAge keeps finished jobs visible to it.
# This is the tests' cluster; users' clusters need nothing from this file.
set -euo pipefail

NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 85 / 100 ))
CONF_DIR=/etc/slurm
FAKE_GPUS=/var/lib/ws2s-fake-gpu

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q slurm-wlm munge
fi

if scontrol ping 2>/dev/null | grep -q "is UP" && sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; then
    echo "SLURM is up on $NODE"
    exit 0
fi

# munge: a key, then the daemon as the munge user.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$FAKE_GPUS"
touch "$FAKE_GPUS/gpu0" "$FAKE_GPUS/gpu1"
cat > "$CONF_DIR/slurm.conf" <<EOF
ClusterName=ws2s-test
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
echo "NodeName=$NODE Name=gpu File=$FAKE_GPUS/gpu[0-1]" > "$CONF_DIR/gres.conf"

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
        echo "SLURM is up on $NODE ($CPUS CPUs, $MEM_MB MB, partitions cpu and gpu)"
        exit 0
    fi
    sleep 1
done
echo "start_cluster.sh: SLURM did not come up; see /var/log/slurm/" >&2
sinfo -N -l >&2 || true
exit 1
