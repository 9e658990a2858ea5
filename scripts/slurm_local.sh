#!/usr/bin/env bash
# A private single-node SLURM cluster on this machine for migvis's slurm tests:
# munged, (ACCT=dbd: a private MariaDB + slurmdbd), slurmctld and slurmd, all
# started without systemd and stopped by the PIDs this script recorded.
#
# Usage: scripts/slurm_local.sh start|stop|status|env
#   SLURM_DIR  state, logs and config (default /tmp/migvis-slurm)
#   ACCT       dbd (default; full sacct through slurmdbd) or none (no accounting)
# After `start`, clients need SLURM_CONF=$SLURM_DIR/slurm.conf (`env` prints it).
# Packages: scripts/install_deps.sh --with-slurm
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SLURM_DIR:-/tmp/migvis-slurm}
ACCT=${ACCT:-dbd}
HOST=$(hostname -s)
CONF=$DIR/slurm.conf
DB=$DIR/mariadb
export SLURM_CONF=$CONF
PIDFILES=("$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/slurmdbd.pid" "$DIR/munged.pid" "$DB/mariadbd.pid")

log() { echo "slurm_local: $*" >&2; }
poll() {  # poll CMD TRIES: run CMD every 0.2 s until it succeeds
  local i
  for ((i = 0; i < $2; i++)); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

start_munge() {
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    head -c 1024 /dev/urandom >/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  # munged runs as the munge user and can only write its pid file where that
  # user may; keep our own copy beside the other daemons' pid files.
  # A munged left by an earlier private cluster whose test was killed (its
  # teardown never ran) holds the socket: it is ours (our pid file), stop it.
  if [ -s /run/munge/migvis-munged.pid ]; then
    old=$(cat /run/munge/migvis-munged.pid)
    if kill -0 "$old" 2>/dev/null; then
      log "stopping a leftover munged (pid $old) from an earlier test cluster"
      kill "$old" 2>/dev/null || true
      poll "! kill -0 $old 2>/dev/null" 50 || true
    fi
  fi
  rm -f /run/munge/migvis-munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/migvis-munged.pid --socket=/run/munge/munge.socket.2 ||
    { log "munged did not start"; return 1; }
  poll "[ -s /run/munge/migvis-munged.pid ]" 50 && cp /run/munge/migvis-munged.pid "$DIR/munged.pid"
  munge -n | unmunge >/dev/null || { log "munge round trip failed"; return 1; }
}

start_dbd() {
  mkdir -p "$DB"
  chown mysql:mysql "$DB"
  if [ ! -d "$DB/data/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$DB/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$DB/install.log" 2>&1 || { log "mariadb-install-db failed: $DB/install.log"; return 1; }
    local fresh=1
  fi
  mariadbd --user=mysql --datadir="$DB/data" --socket="$DB/mysqld.sock" --port=3307 --bind-address=127.0.0.1 \
    --pid-file="$DB/mariadbd.pid" --log-error="$DB/error.log" --skip-name-resolve >/dev/null 2>&1 &
  poll "[ -S '$DB/mysqld.sock' ] && [ -s '$DB/mariadbd.pid' ]" 150 || { log "mariadbd did not start"; tail -5 "$DB/error.log" >&2; return 1; }
  if [ "${fresh:-0}" = 1 ]; then
    mariadb -S "$DB/mysqld.sock" -u root -e \
      "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'migvis-local'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  fi
  cat >"$DIR/slurmdbd.conf" <<EOC
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=migvis-local
StorageLoc=slurm_acct_db
EOC
  chmod 600 "$DIR/slurmdbd.conf"
  /usr/sbin/slurmdbd || { log "slurmdbd did not start"; return 1; }
  poll "sacctmgr -n list cluster" 150 || { log "slurmdbd does not answer"; tail -5 "$DIR/slurmdbd.log" >&2; return 1; }
  sacctmgr -n -P list cluster format=cluster | grep -qx migvis || sacctmgr -i add cluster migvis >/dev/null
}

start() {
  if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    log "already running ($DIR)"; return 0
  fi
  command -v slurmctld >/dev/null || { log "slurm is not installed (scripts/install_deps.sh --with-slurm)"; return 1; }
  local t0=$(date +%s.%N)
  mkdir -p "$DIR/state" "$DIR/spool"
  chmod 755 "$DIR"
  CTLD_PORT=${SLURM_CTLD_PORT:-6817}; SLURMD_PORT=$((CTLD_PORT + 1)); DBD_PORT=$((CTLD_PORT + 2))
  local mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
  sed -e "s#@DIR@#$DIR#g" -e "s#@HOST@#$HOST#g" -e "s#@CPUS@#$(nproc)#g" -e "s#@MEM_MB@#$mem_mb#g" \
      -e "s#@CTLD_PORT@#$CTLD_PORT#g" -e "s#@SLURMD_PORT@#$SLURMD_PORT#g" "$HERE/slurm/slurm.conf.in" >"$CONF"
  if [ "$ACCT" = dbd ]; then
    sed -i -e "s#^AccountingStorageType=.*#AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=$DBD_PORT#" \
           -e "s#^JobAcctGatherType=.*#JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=5#" "$CONF"
  fi
  start_munge || return 1
  if [ "$ACCT" = dbd ]; then start_dbd || return 1; fi
  /usr/sbin/slurmctld -f "$CONF" || { log "slurmctld did not start"; tail -20 "$DIR/slurmctld.log" >&2; return 1; }
  /usr/sbin/slurmd -f "$CONF" || { log "slurmd did not start"; tail -20 "$DIR/slurmd.log" >&2; return 1; }
  if poll "srun -t 1 -n1 true" 150; then
    log "up in $(echo "$(date +%s.%N) - $t0" | bc) s (ACCT=$ACCT, SLURM_CONF=$CONF)"
    return 0
  fi
  log "cluster did not come up"; sinfo -N -l >&2; tail -20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2
  return 1
}

stop() {
  local f p i
  # Cancel every job of this private cluster first: slurmstepd and the workers
  # it started would outlive slurmd (and hold the ports' next user hostage).
  if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    local ids
    ids=$(squeue -h -o %A 2>/dev/null | sort -u)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null
      poll "[ -z \"\$(squeue -h -o %A 2>/dev/null)\" ]" 100 || log "jobs still in the queue after 20 s: $(squeue -h 2>&1 | head -3)"
    fi
  fi
  for f in "${PIDFILES[@]}"; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    if kill "$p" 2>/dev/null; then
      for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$p" 2>/dev/null && { log "pid $p ($f) ignored SIGTERM; SIGKILL"; kill -9 "$p"; }
    fi
    rm -f "$f"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: scripts/slurm_local.sh start|stop|status|env" >&2; exit 64 ;;
esac
