#!/usr/bin/env bash
# Slurm for real: installs Debian's Slurm (slurmctld, slurmd, client) and munge, writes a one-node
# slurm.conf for this host, starts munged, slurmctld and slurmd as root, submits
# experiments/ci-slurm.yaml as a 2-task array with `pelt slurm --submit`, waits for the array and its
# table job, and checks that every run has one record and the table exists; then submits again and checks
# that the resubmitted array trains nothing. Stops the daemons it started and removes its state, whatever
# happens. Needs root; CI runs it (.ci/run) after the tests, whose build makes target/debug/pelt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pelt="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/pelt"
[ -x "$pelt" ] || { echo "slurm-test: $pelt is missing: run ./just test first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "slurm-test: needs root (it starts slurmctld, slurmd and munged)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
  || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
fi

state="$(mktemp -d /tmp/pelt-slurm.XXXXXX)"
chmod 755 "$state"
results="$state/results"
pids=()
cleanup() {
  scancel --full --quiet -u root 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap cleanup EXIT

# munge: a key of the package's, a socket of our own.
mkdir -p "$state/munge" /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
chown -R munge:munge "$state/munge" /run/munge /etc/munge
runuser -u munge -- munged --socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
  --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
pids+=("$(cat "$state/munge/munged.pid")")

host="$(hostname -s)"
node="$(slurmd -C | head -1)"   # NodeName=<host> CPUs=... RealMemory=... as slurmd sees this machine
mkdir -p "$state/spool" "$state/ctld"
export SLURM_CONF="$state/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=pelt-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node State=UNKNOWN
PartitionName=pelt Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i -f "$SLURM_CONF"
sleep 1
pids+=("$(cat "$state/slurmctld.pid")")
slurmd -f "$SLURM_CONF"
sleep 1
pids+=("$(cat "$state/slurmd.pid")")
for _ in $(seq 30); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)' && break
  sleep 1
done
sinfo

wait_queue() {
  for _ in $(seq 600); do
    [ -z "$(squeue -h -u root 2>/dev/null)" ] && return 0
    sleep 1
  done
  echo "slurm-test: jobs still queued after 10 minutes:" >&2; squeue >&2; return 1
}

started=$(date +%s)
"$pelt" slurm experiments/ci-slurm.yaml --shards 2 --glue-dir ../shared/data/glue --results "$results" --submit
wait_queue
suite="$results/ci-slurm"
echo "--- shard logs"; cat "$suite"/slurm/logs/shard-*.out
echo "--- table job log"; cat "$suite/slurm/logs/table.out"
records=$(ls "$suite/records" | wc -l)
[ "$records" = 4 ] || { echo "slurm-test: $records records, expected 4" >&2; exit 1; }
grep -q '"status": "ok"' "$suite"/records/*.json
[ "$(grep -l '"status": "ok"' "$suite"/records/*.json | wc -l)" = 4 ] \
  || { echo "slurm-test: not every run is ok" >&2; exit 1; }
[ -s "$suite/table.md" ] || { echo "slurm-test: the table job wrote no table" >&2; exit 1; }
[ "$(wc -l < "$suite/records.jsonl")" = 4 ] || { echo "slurm-test: records.jsonl does not list 4 runs" >&2; exit 1; }
grep -q "^Cost: 4 runs" "$suite/slurm/logs/table.out" || { echo "slurm-test: no cost report" >&2; exit 1; }

# Resubmitting trains nothing: every run has its record.
"$pelt" slurm experiments/ci-slurm.yaml --shards 2 --glue-dir ../shared/data/glue --results "$results" --submit
wait_queue
for log in "$suite"/slurm/logs/shard-*.out; do
  grep -q "already done, 0 to run" "$log" || { echo "slurm-test: $log trained again" >&2; cat "$log" >&2; exit 1; }
done
echo "slurm-test: ok: 4 runs over a 2-task array, one record each, table and cost written, a resubmission trained nothing ($(( $(date +%s) - started )) s)"
