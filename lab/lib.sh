# shellcheck shell=bash
# Helpers shared by lab/up, lab/down and bench/: podman nodes reachable over
# SSH on a network the lab owns. Source tools/env.sh first.

# lab_network NAME SUBNET
lab_network() {
  podman network exists "$1" || podman network create --subnet "$2" "$1" >/dev/null
}

# lab_key: the lab's SSH key pair (created once, kept under .work/lab). Two
# test lanes may ask at the same moment: the lock makes one of them create it
# (without it, the second ssh-keygen stops at its "Overwrite (y/n)?" prompt).
lab_key() {
  mkdir -p "$PGHA_WORK/lab"
  (
    flock 9
    [ -f "$PGHA_WORK/lab/id_ed25519" ] \
      || ssh-keygen -q -t ed25519 -N '' -C pgha-lab -f "$PGHA_WORK/lab/id_ed25519" </dev/null
  ) 9>"$PGHA_WORK/lab/.key.lock"
}

# lab_node CONTAINER HOSTNAME NETWORK IP: start a systemd container and let the
# lab key log in as root.
lab_node() {
  local name=$1 host=$2 net=$3 ip=$4
  if ! podman container exists "$name"; then
    podman run -d --name "$name" --hostname "$host" --network "$net" --ip "$ip" \
      --cap-add NET_ADMIN,NET_RAW --label pgha-lab=1 "$PGHA_IMAGE" /sbin/init >/dev/null
  elif [ "$(podman inspect -f '{{.State.Running}}' "$name")" != true ]; then
    podman start "$name" >/dev/null
  fi
  podman exec "$name" install -d -m 700 /root/.ssh
  podman cp "$PGHA_WORK/lab/id_ed25519.pub" "$name:/root/.ssh/authorized_keys"
  podman exec "$name" chown root:root /root/.ssh/authorized_keys
}

# lab_wait_ssh IP...: wait until sshd answers on every address (60 s at most).
lab_wait_ssh() {
  local ip i
  for ip in "$@"; do
    for i in $(seq 1 60); do
      if timeout 2 bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; then break; fi
      [ "$i" = 60 ] && { echo "sshd on $ip did not answer" >&2; return 1; }
      sleep 1
    done
  done
}

# lab_rm CONTAINER...: remove containers (no error if absent).
lab_rm() {
  local c
  for c in "$@"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
}
