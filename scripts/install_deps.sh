#!/usr/bin/env bash
# Installs migvis's build, test and run dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped by apt, and the whole step is
# skipped when every package is installed.
#
# Usage: scripts/install_deps.sh [--with-slurm] [--with-browser] [--with-bench]
#   core (always): compilers, LibTorch (CPU), OpenBLAS, Open MPI, HDF5, SQLite,
#                  yaml-cpp, fmt, GoogleTest, CLI11, libpng, nlohmann-json
#   --with-slurm:  slurm-wlm, munge, slurmdbd, mariadb-server (the slurm tests)
#   --with-browser: chromium (the HTML report screenshot test)
#   --with-bench:  python3-torch (the Python reference timings in bench/)
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp
  libopenmpi-dev openmpi-bin
  libhdf5-dev libsqlite3-dev sqlite3 libyaml-cpp-dev libfmt-dev
  libgtest-dev libgmock-dev libcli11-dev libpng-dev nlohmann-json3-dev
  libspdlog-dev libssl-dev ccache
)
for arg in "$@"; do
  case "$arg" in
    --with-slurm) pkgs+=(slurm-wlm slurmctld slurmd munge slurmdbd mariadb-server bc) ;;
    --with-browser) pkgs+=(chromium) ;;
    --with-bench) pkgs+=(python3-torch) ;;
    *) echo "install_deps.sh: unknown option '$arg'" >&2; exit 64 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install_deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/migvis-apt.log 2>&1 || {
  tail -30 /tmp/migvis-apt.log >&2; echo "install_deps: apt-get failed (log: /tmp/migvis-apt.log)" >&2; exit 1; }
echo "install_deps: done"
