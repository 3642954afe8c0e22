#!/usr/bin/env bash
# Installs the PostgreSQL server binaries pgcharm runs, pgBackRest (backups, WAL archiving) and
# Prometheus's postgres exporter (each unit's Postgres metrics) (Debian/Ubuntu, apt) when they are missing, and makes sure the `postgres` OS user exists. Idempotent; needs root only when
# something is missing.
#
#   scripts/install-postgres.sh [MAJOR]     # MAJOR defaults to 15
#
# pgcharm starts its own Postgres under the sidecar, so a cluster this script installs is
# left stopped and set to manual start: the distro's default cluster must not hold port
# 5432 or CPU.
set -euo pipefail

major=${1:-15}
if [[ ! $major =~ ^[0-9]+$ ]]; then
  echo "install-postgres: MAJOR must be a number like 15, got '$major'" >&2
  exit 2
fi
pkg=postgresql-$major
bindir=/usr/lib/postgresql/$major/bin

have_server() { [[ -x $bindir/postgres && -x $bindir/initdb ]]; }
have_user() { getent passwd postgres >/dev/null; }
have_pgbackrest() { command -v pgbackrest >/dev/null; }
have_exporter() { command -v prometheus-postgres-exporter >/dev/null; }

if have_server && have_user && have_pgbackrest && have_exporter; then
  echo "PostgreSQL $major server binaries present in $bindir; pgBackRest and the postgres exporter present; user postgres exists."
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "PostgreSQL $major server binaries, pgBackRest or the postgres exporter are missing ($bindir/postgres, pgbackrest, prometheus-postgres-exporter). Install them as root:" >&2
  echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkg pgbackrest prometheus-postgres-exporter" >&2
  echo "or run this script as root: sudo bash scripts/install-postgres.sh $major" >&2
  exit 1
fi

# Installs packages with apt, the package lists updated once per run. No service starts while it
# runs: policy-rc.d (which invoke-rc.d and deb-systemd-invoke both obey) refuses them, unless one
# is there already (Docker images often ship one): a distro's default cluster or a system-wide
# exporter would hold ports and CPU.
apt_updated=
apt_install() {
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# pgcharm: no service starts while installing\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "Installing $* with apt..."
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z $apt_updated ]]; then
    apt-get -o Acquire::Retries=3 update
    apt_updated=1
  fi
  apt-get -o Acquire::Retries=3 install -y --no-install-recommends "$@"
}

if ! have_server; then
  if ! command -v apt-get >/dev/null; then
    echo "install-postgres: apt-get not found; install the PostgreSQL $major server so that $bindir/postgres exists" >&2
    exit 1
  fi

  apt_install "$pkg"

  # The package creates a default cluster; make sure it neither runs now nor starts at boot.
  conf=/etc/postgresql/$major/main
  if [[ -f $conf/start.conf ]]; then
    if command -v pg_ctlcluster >/dev/null && pg_ctlcluster "$major" main status >/dev/null 2>&1; then
      pg_ctlcluster "$major" main stop
    fi
    echo manual >"$conf/start.conf"
    echo "Left the distro's default cluster ($major/main) stopped, with start.conf set to manual."
  fi
  have_server || { echo "install-postgres: $pkg installed but $bindir/postgres is missing" >&2; exit 1; }
fi

if ! have_pgbackrest; then
  apt_install pgbackrest
  have_pgbackrest || { echo "install-postgres: pgbackrest installed but not on PATH" >&2; exit 1; }
fi

if ! have_exporter; then
  # Its package would start a system-wide exporter on port 9187; the units run their own.
  apt_install prometheus-postgres-exporter
  have_exporter || { echo "install-postgres: prometheus-postgres-exporter installed but not on PATH" >&2; exit 1; }
fi

if ! have_user; then
  # Normally created by postgresql-common; binaries installed some other way may lack it.
  if getent group postgres >/dev/null; then group=(-g postgres); else group=(-U); fi
  useradd --system "${group[@]}" --home-dir /var/lib/postgresql --shell /bin/bash postgres
  echo "Created the postgres OS user."
fi

echo "PostgreSQL $major server binaries present in $bindir; pgBackRest and the postgres exporter present; user postgres exists."
