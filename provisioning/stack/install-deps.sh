#!/bin/sh
# Install the Debian/Ubuntu packages WardWatch's tests, demo and benchmarks need, if missing.
# Called by `make deps`. It starts no service: the stack runs its own Mosquitto and InfluxDB
# on free loopback ports; a policy-rc.d (only if none exists) stops the packages' own
# maintainer scripts from starting theirs during the install.
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || need="$need mosquitto"
have mosquitto_sub || need="$need mosquitto-clients"
have influxd || need="$need influxdb"
python3 -c 'import ensurepip, venv' 2>/dev/null || need="$need python3-venv"
have node || need="$need nodejs"
have npm || need="$need npm"
have systemd-analyze || need="$need systemd"
[ -z "$need" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages:$need"
$SUDO apt-get update -qq
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
