#!/usr/bin/env bash
# local_cluster.sh — a single-node Slurm cluster on this machine (munged + slurmctld + slurmd) for lafn's Slurm tests.
#
# Usage: slurm/local_cluster.sh start|stop|status       (as root)
#   start   installs the Debian packages slurm-wlm and munge if missing, writes /etc/slurm/slurm.conf (this
#           machine as the only node, `slurmd -C`), starts munged (as user munge), slurmctld and slurmd, and
#           waits until the node takes jobs. Idempotent: daemons it already started are left running. If a
#           Slurm controller not started by this script answers already, it is used as it is and nothing starts.
#   stop    cancels the jobs of this cluster, stops only the daemons whose pids this script recorded in
#           /run/lafn-slurm/*.pid, and removes the configuration and state it wrote (logs stay in
#           /var/log/lafn-slurm/).
#   status  says whether the controller answers and lists the nodes and the recorded daemons.
# Jobs run as root here, so a job's mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# in the environment sbatch passes on (lafn's tests set them).
set -euo pipefail

conf=/etc/slurm/slurm.conf
marker="# written by lafn slurm/local_cluster.sh"
run_dir=/run/lafn-slurm          # pid files of the daemons this script started
state_dir=/var/lib/lafn-slurm    # slurmctld state and slurmd spool, removed by stop
log_dir=/var/log/lafn-slurm

log() { printf 'local_cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# 0 when the process of the pid in file $1 is alive and its name is $2 (a reused pid is not ours).
ours_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
  if ours_alive "$run_dir/munged.pid" munged; then return; fi
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then log "munged already runs (not started here); using it"; return; fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0755 /run/munge
  chmod 0700 /etc/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  [ -s /run/munge/munged.pid ] || die "munged did not start; see /var/log/munge/munged.log"
  cp /run/munge/munged.pid "$run_dir/munged.pid"
}

write_config() {
  if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; a Slurm configured by someone else is left alone"
  fi
  local host node
  host="$(hostname -s)"
  node="$(slurmd -C | head -n 1)"
  case "$node" in NodeName=*) ;; *) die "slurmd -C printed '$node', expected a NodeName= line" ;; esac
  mkdir -p "$state_dir/ctld" "$state_dir/d" "$log_dir"
  cat >"$conf.tmp" <<CONF
$marker; 'slurm/local_cluster.sh stop' removes it
ClusterName=lafn-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=3600
StateSaveLocation=$state_dir/ctld
SlurmdSpoolDir=$state_dir/d
SlurmctldPidFile=$run_dir/slurmctld.pid
SlurmdPidFile=$run_dir/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
$node State=UNKNOWN
PartitionName=lafn Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$conf.tmp" "$conf"
}

# Starts daemon $1 (slurmctld or slurmd) unless the one recorded in its pid file is alive.
start_daemon() {
  if ours_alive "$run_dir/$1.pid" "$1"; then return; fi
  "/usr/sbin/$1"
  for _ in $(seq 50); do ours_alive "$run_dir/$1.pid" "$1" && return; sleep 0.1; done
  die "$1 did not start; see $log_dir/$1.log"
}

wait_node_idle() {
  local state=""
  for _ in $(seq 60); do
    state="$(sinfo -h -o %T 2>/dev/null | head -n 1)"
    case "$state" in idle|mixed|allocated) log "cluster up: node $(hostname -s) $state"; return ;; esac
    sleep 0.5
  done
  die "the node did not become idle in 30 s (state '$state'); see $log_dir/"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "start needs root (it installs packages and starts slurmd as root)"
  if scontrol ping >/dev/null 2>&1 && ! grep -qsF "$marker" "$conf"; then
    log "a Slurm controller not started by this script answers; using it, nothing started"
    return
  fi
  install_packages
  mkdir -p "$run_dir"
  start_munge
  write_config
  start_daemon slurmctld
  start_daemon slurmd
  wait_node_idle
}

# Stops the daemon recorded in $run_dir/$1.pid (SIGTERM, then SIGKILL after 10 s) and removes the pid file.
stop_daemon() {
  local file="$run_dir/$1.pid" pid
  if ours_alive "$file" "$1"; then
    pid="$(cat "$file")"
    kill -TERM "$pid"
    for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then log "$1 ($pid) ignored SIGTERM; killing it"; kill -KILL "$pid"; fi
    log "stopped $1 ($pid)"
  fi
  rm -f "$file"
}

stop() {
  [ "$(id -u)" -eq 0 ] || die "stop needs root"
  if ours_alive "$run_dir/slurmctld.pid" slurmctld; then
    local jobs
    jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    if [ -n "${jobs// /}" ]; then
      log "cancelling jobs $jobs"
      # shellcheck disable=SC2086
      scancel $jobs || true
      for _ in $(seq 100); do [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  if grep -qsF "$marker" "$conf"; then rm -f "$conf"; fi
  rm -rf "$state_dir"
  rmdir "$run_dir" 2>/dev/null || true
}

status() {
  if scontrol ping 2>/dev/null | grep -q UP; then sinfo; else echo "no Slurm controller answers"; fi
  for d in munged slurmctld slurmd; do
    if ours_alive "$run_dir/$d.pid" "$d"; then echo "$d: running, pid $(cat "$run_dir/$d.pid") (started here)"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
