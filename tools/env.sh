# shellcheck shell=bash
# Sourced by the project's scripts: paths and environment for the venv, the
# collections and podman. Nothing here touches the system.
PGHA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGHA_WORK=${PGHA_WORK:-$PGHA_ROOT/.work}
PGHA_VENV=${PGHA_VENV:-$PGHA_ROOT/.venv}
export PGHA_ROOT PGHA_WORK PGHA_VENV
export PATH=$PGHA_VENV/bin:$PATH
export CONTAINERS_CONF=$PGHA_ROOT/lab/containers.conf
export ANSIBLE_HOME=$PGHA_WORK/ansible-home
# This checkout is the collection pgha.cluster, linked under .work/collections
# (tools/molecule puts Molecule's own installed copy first); the collections it
# depends on live in the venv's site-packages.
export ANSIBLE_COLLECTIONS_PATH=$PGHA_WORK/collections
export ANSIBLE_CONFIG=$PGHA_ROOT/ansible.cfg
# The lab's images (lab/build-image): Debian 13 with PostgreSQL 17 by default,
# Debian 12 with PostgreSQL 15 for the default scenario's second cluster.
export PGHA_IMAGE=${PGHA_IMAGE:-localhost/pgha-debian13:latest}
export PGHA_IMAGE_BOOKWORM=${PGHA_IMAGE_BOOKWORM:-localhost/pgha-debian12:latest}
