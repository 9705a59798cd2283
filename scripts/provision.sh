#!/usr/bin/env bash
# Provisions the real computing elements the site-director tests run against, on this machine:
#   - a one-node SLURM (slurmctld + slurmd, munge authentication, slurmdbd on the local MariaDB so
#     that sacct answers for jobs that have left the queue);
#   - an sshd on 127.0.0.1:$PH_SSH_PORT with key-only login for the account $PH_LAB_USER;
#   - an ARC A-REX with its REST interface (fork LRMS, a test CA, a client certificate);
#   - HAProxy (installed only: the replica tests start their own load balancer);
#   - bubblewrap (installed only: the pilot isolates payloads with it);
#   - promtool, from Debian's prometheus package (installed only: the metrics test checks /metrics with it).
# Idempotent: packages already installed are not installed again, daemons already running are left
# alone, keys and certificates are made once. Needs root (apt-get, daemons, a test account).
#
# What the tests read: $PH_LAB_DIR/lab.json (paths, URLs, the account), written at the end.
#
#   scripts/provision.sh            install what is missing and start everything
#   scripts/provision.sh --stop     stop the daemons this script started
#
# Daemons are started directly (no systemd here). Package post-install scripts must not start
# daemons of their own: a policy-rc.d that refuses (exit 101) is put in place if none exists.
set -euo pipefail

: "${PH_LAB_DIR:=/var/tmp/pilothouse-lab}"
: "${PH_LAB_USER:=pilot}"
: "${PH_SSH_PORT:=22}"
: "${PH_ARC_PORT:=8443}"
: "${PH_SLURM_DBD:=1}"

SLURM_ETC=/etc/slurm
SLURM_CONF="$SLURM_ETC/slurm.conf"
HOST_SHORT=$(hostname -s)

log() { printf 'provision: %s\n' "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

# A process is alive when /proc has it, it is not a zombie (PID 1 here reaps orphans late) and,
# when a program name is given, it is that program: a pidfile left by a daemon that died with the
# machine's previous session may name a PID that another process holds now.
alive_pidfile() {
  local file=$1 program=${2:-} pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  [ -e "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  [ -z "$program" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$program" ]
}

stop_pidfile() {
  local file=$1 program=${2:-} pid
  alive_pidfile "$file" "$program" || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 80); do
    alive_pidfile "$file" "$program" || return 0
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
}

poll_until() { # poll_until SECONDS COMMAND...: 0 once COMMAND succeeds, 1 when SECONDS ran out
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.25
  done
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  poll_until "$seconds" "$@" || die "$what did not come up within ${seconds} s"
}

install_packages() {
  local wanted=(slurm-wlm munge openssh-server openssh-client haproxy bubblewrap
    nordugrid-arc-arex nordugrid-arc-arcctl nordugrid-arc-client nordugrid-arc-plugins-arcrest)
  [ "$PH_SLURM_DBD" = 1 ] && wanted+=(slurmdbd)
  local missing=()
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  # Without their recommends: promtool only (not the server's daemon), and headless Chromium for the
  # web monitor's browser tests (driven by playwright-core).
  local lean=()
  for package in prometheus chromium; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || lean+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && [ ${#lean[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} ${lean[*]}"
  [ -e /usr/sbin/policy-rc.d ] || {
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
  [ ${#lean[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
}

ensure_account() {
  id "$PH_LAB_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$PH_LAB_USER"
  mkdir -p "$PH_LAB_DIR"
  chmod 755 "$PH_LAB_DIR"
  # slurmd must resolve its own short name.
  getent hosts "$HOST_SHORT" >/dev/null || echo "127.0.0.1 $HOST_SHORT" >>/etc/hosts
}

start_munge() {
  [ -s /etc/munge/munge.key ] || {
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  }
  install -d -o munge -g munge -m 0755 /run/munge
  alive_pidfile /run/munge/munged.pid munged || runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_slurmdbd() {
  [ "$PH_SLURM_DBD" = 1 ] || return 0
  # The machine's MariaDB (root over its socket) keeps the accounting database.
  mariadb -uroot -e 'select 1' >/dev/null 2>&1 ||
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for 30 MariaDB mariadb -uroot -e 'select 1'
  mariadb -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-lab';
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-lab';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  cat >"$SLURM_ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=$PH_LAB_DIR/slurm/log/slurmdbd.log
PidFile=$PH_LAB_DIR/slurm/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurm-lab
StorageLoc=slurm_acct_db
CONF
  # slurmdbd refuses a configuration readable by others.
  chown slurm:slurm "$SLURM_ETC/slurmdbd.conf"
  chmod 600 "$SLURM_ETC/slurmdbd.conf"
  alive_pidfile "$PH_LAB_DIR/slurm/run/slurmdbd.pid" slurmdbd || /usr/sbin/slurmdbd
  wait_for 30 slurmdbd bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
}

write_slurm_conf() {
  local accounting="AccountingStorageType=accounting_storage/none"
  if [ "$PH_SLURM_DBD" = 1 ]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
  fi
  # Memory is enforced the way sites without cgroups do it: the accounting poller samples each step
  # every 2 s and kills one above its --mem (the job ends OUT_OF_MEMORY).
  cat >"$SLURM_CONF.new" <<CONF
ClusterName=lab
SlurmctldHost=$HOST_SHORT
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$PH_LAB_DIR/slurm/state
SlurmdSpoolDir=$PH_LAB_DIR/slurm/spool
SlurmctldPidFile=$PH_LAB_DIR/slurm/run/slurmctld.pid
SlurmdPidFile=$PH_LAB_DIR/slurm/run/slurmd.pid
SlurmctldLogFile=$PH_LAB_DIR/slurm/log/slurmctld.log
SlurmdLogFile=$PH_LAB_DIR/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
$accounting
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
MinJobAge=600
KillWait=5
InactiveLimit=0
SchedulerParameters=sched_interval=2
NodeName=$HOST_SHORT NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE DefMemPerCPU=500 State=UP
PartitionName=short Nodes=ALL MaxTime=10 DefMemPerCPU=500 State=UP
CONF
  if [ -f "$SLURM_CONF" ] && cmp -s "$SLURM_CONF" "$SLURM_CONF.new"; then
    rm "$SLURM_CONF.new"
    return 1
  fi
  mv "$SLURM_CONF.new" "$SLURM_CONF"
  return 0
}

start_slurm() {
  mkdir -p "$SLURM_ETC" "$PH_LAB_DIR"/slurm/{state,spool,log,run}
  chown slurm:slurm "$PH_LAB_DIR"/slurm/{state,log,run}
  start_munge
  start_slurmdbd
  local changed=0
  write_slurm_conf && changed=1
  if [ "$PH_SLURM_DBD" = 1 ]; then
    sacctmgr -i show cluster lab 2>/dev/null | grep -q lab || sacctmgr -i add cluster lab >/dev/null 2>&1 || true
  fi
  if [ $changed = 1 ]; then
    stop_pidfile "$PH_LAB_DIR/slurm/run/slurmd.pid" slurmd
    stop_pidfile "$PH_LAB_DIR/slurm/run/slurmctld.pid" slurmctld
  fi
  alive_pidfile "$PH_LAB_DIR/slurm/run/slurmctld.pid" slurmctld || /usr/sbin/slurmctld -f "$SLURM_CONF"
  alive_pidfile "$PH_LAB_DIR/slurm/run/slurmd.pid" slurmd || /usr/sbin/slurmd -f "$SLURM_CONF"
  wait_for 30 'the SLURM node' sh -c "sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'"
  # The lab account submits over SSH: its pilots write their output under its home.
  install -d -o "$PH_LAB_USER" -g "$PH_LAB_USER" -m 0755 "$PH_LAB_DIR/slurm/output"
}

start_sshd() {
  local dir="$PH_LAB_DIR/ssh" home
  install -d -m 0700 "$dir"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C pilothouse-lab -f "$dir/id_ed25519"
  home=$(getent passwd "$PH_LAB_USER" | cut -d: -f6)
  install -d -m 0700 -o "$PH_LAB_USER" -g "$PH_LAB_USER" "$home/.ssh"
  install -m 0600 -o "$PH_LAB_USER" -g "$PH_LAB_USER" "$dir/id_ed25519.pub" "$home/.ssh/authorized_keys"
  [ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A
  install -d -m 0755 /run/sshd
  alive_pidfile "$dir/sshd.pid" sshd ||
    /usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port="$PH_SSH_PORT" -o PidFile="$dir/sshd.pid" \
      -o PasswordAuthentication=no -o MaxStartups=100:30:200 -o MaxSessions=100
  local i
  for i in $(seq 1 40); do
    ssh-keyscan -p "$PH_SSH_PORT" -t ed25519 127.0.0.1 >"$dir/known_hosts" 2>/dev/null && [ -s "$dir/known_hosts" ] && break
    sleep 0.25
  done
  [ -s "$dir/known_hosts" ] || die "sshd on 127.0.0.1:$PH_SSH_PORT gave no host key"
  ssh -p "$PH_SSH_PORT" -i "$dir/id_ed25519" -o BatchMode=yes -o UserKnownHostsFile="$dir/known_hosts" \
    "$PH_LAB_USER@127.0.0.1" true || die "key login as $PH_LAB_USER failed"
}

start_arc() {
  local dir="$PH_LAB_DIR/arc"
  mkdir -p "$dir"/{control,session,log}
  chown "$PH_LAB_USER" "$dir/session"
  [ -f /etc/grid-security/testCA-hostcert.pem ] || {
    arcctl test-ca init
    arcctl test-ca hostcert
  }
  # The host certificate must name this host (and lives 30 days): re-issue it when it does not.
  if ! openssl x509 -in /etc/grid-security/testCA-hostcert.pem -noout -ext subjectAltName 2>/dev/null |
    grep -q "DNS:$HOST_SHORT\b" || ! openssl x509 -in /etc/grid-security/testCA-hostcert.pem -noout -checkend 86400 >/dev/null; then
    arcctl test-ca hostcert -f
  fi
  if [ ! -f "$dir/usercert.pem" ] || ! openssl x509 -in "$dir/usercert.pem" -noout -checkend 86400 >/dev/null; then
    (cd "$dir" && arcctl test-ca usercert -n pilothouse-lab --no-auth >/dev/null &&
      mv client-pilothouse-lab-cert.pem usercert.pem && mv client-pilothouse-lab-key.pem userkey.pem)
  fi
  chmod 600 "$dir/userkey.pem"
  local subject
  subject=$(openssl x509 -in "$dir/usercert.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
  local ca
  ca=$(ls /etc/grid-security/certificates/ARC-TestCA-*.pem | grep -v -- '-key.pem' | head -1)
  cp "$ca" "$dir/ca.pem"
  cat >"$dir/arc.conf" <<CONF
[common]
hostname = $HOST_SHORT
x509_host_key = /etc/grid-security/testCA-hostkey.pem
x509_host_cert = /etc/grid-security/testCA-hostcert.pem
x509_cert_dir = /etc/grid-security/certificates

[authgroup:lab]
subject = $subject

[mapping]
map_to_user = lab $PH_LAB_USER:$PH_LAB_USER

[lrms]
lrms = fork

[arex]
controldir = $dir/control
sessiondir = $dir/session
logfile = $dir/log/arex.log
pidfile = $dir/arex.pid
wakeupperiod = 5

[arex/ws]
wsurl = https://$HOST_SHORT:$PH_ARC_PORT/arex
logfile = $dir/log/ws.log
pidfile = $dir/arex-ws.pid

[arex/ws/jobs]
allowaccess = lab

[infosys]
logfile = $dir/log/infoprovider.log

[infosys/glue2]

[infosys/cluster]

[queue:fork]
CONF
  export ARC_CONFIG="$dir/arc.conf"
  # REST status answers come from a job document the info provider rewrites every 60 s by default
  # (unit: 1/10 s). A copy of the start script asks for every 5 s instead.
  sed 's#<arex:gmconfig>\$ARC_RUNTIME_CONFIG</arex:gmconfig>#&<arex:InfoproviderWakeupPeriod>50</arex:InfoproviderWakeupPeriod>#' \
    /usr/share/arc/arc-arex-start >"$dir/arc-arex-start"
  chmod +x "$dir/arc-arex-start"
  # Without a dhparam.pem, A-REX's start script runs `openssl dhparam 4096` in the background: a
  # whole core for 10+ minutes of a 2-core machine, slowing every test. RFC 7919's ffdhe2048 group
  # is a vetted safe prime, made at once, and passes the script's `openssl dhparam -check`.
  mkdir -p "$dir/control"
  [ -s "$dir/control/dhparam.pem" ] ||
    (umask 0177 && openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$dir/control/dhparam.pem")
  local rest=(curl -fsS --max-time 5 --cacert "$dir/ca.pem" --cert "$dir/usercert.pem" --key "$dir/userkey.pem"
    "https://$HOST_SHORT:$PH_ARC_PORT/arex/rest")
  alive_pidfile "$dir/arex.pid" arched || "$dir/arc-arex-start"
  alive_pidfile "$dir/arex-ws.pid" arched || /usr/share/arc/arc-arex-ws-start
  poll_until 45 "${rest[@]}" && return 0
  # Running but not answering (a service left over from an earlier configuration, say): start
  # both afresh once, and show A-REX's own words if that does not help either.
  log "A-REX REST does not answer; restarting A-REX"
  stop_pidfile "$dir/arex-ws.pid" arched
  stop_pidfile "$dir/arex.pid" arched
  "$dir/arc-arex-start"
  /usr/share/arc/arc-arex-ws-start
  poll_until 60 "${rest[@]}" && return 0
  tail -n 20 "$dir/log/ws.log" "$dir/log/arex.log" >&2 2>/dev/null || true
  die "A-REX REST did not come up within 60 s of a restart"
}

write_lab_json() {
  cat >"$PH_LAB_DIR/lab.json.new" <<JSON
{
  "user": "$PH_LAB_USER",
  "host": "$HOST_SHORT",
  "slurm": { "conf": "$SLURM_CONF", "outputDir": "$PH_LAB_DIR/slurm/output", "partition": "debug", "sacct": $([ "$PH_SLURM_DBD" = 1 ] && echo true || echo false) },
  "ssh": { "host": "127.0.0.1", "port": $PH_SSH_PORT, "user": "$PH_LAB_USER", "key": "$PH_LAB_DIR/ssh/id_ed25519", "knownHosts": "$PH_LAB_DIR/ssh/known_hosts" },
  "arc": { "url": "https://$HOST_SHORT:$PH_ARC_PORT/arex/rest/1.0", "ca": "$PH_LAB_DIR/arc/ca.pem", "cert": "$PH_LAB_DIR/arc/usercert.pem", "key": "$PH_LAB_DIR/arc/userkey.pem", "queue": "fork" }
}
JSON
  mv "$PH_LAB_DIR/lab.json.new" "$PH_LAB_DIR/lab.json"
}

stop_all() {
  stop_pidfile "$PH_LAB_DIR/arc/arex-ws.pid" arched
  stop_pidfile "$PH_LAB_DIR/arc/arex.pid" arched
  stop_pidfile "$PH_LAB_DIR/ssh/sshd.pid" sshd
  stop_pidfile "$PH_LAB_DIR/slurm/run/slurmd.pid" slurmd
  stop_pidfile "$PH_LAB_DIR/slurm/run/slurmctld.pid" slurmctld
  stop_pidfile "$PH_LAB_DIR/slurm/run/slurmdbd.pid" slurmdbd
  stop_pidfile /run/munge/munged.pid munged
}

main() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
  if [ "${1:-}" = --stop ]; then
    stop_all
    return 0
  fi
  local started=$SECONDS
  install_packages
  ensure_account
  start_slurm
  start_sshd
  start_arc
  write_lab_json
  log "ready in $((SECONDS - started)) s: $PH_LAB_DIR/lab.json"
}

main "$@"
