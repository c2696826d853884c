#!/usr/bin/env bash
# Validates the deployment files against their published schemas, since no
# Docker engine or Kubernetes cluster can run them here: every resource in
# deploy/k8s against the Kubernetes API schemas (strict: an unknown field
# fails), docker-compose.yml against the Compose Specification. Both
# validators come from PyPI, pinned, into a virtualenv of their own
# (python3-venv from apt-get if missing). deploy/local/test.sh runs this.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="${CX_MANIFEST_VENV:-$root/target/manifest-check-venv}"
# An older Kubernetes still in wide use and the newest the validator knows.
kubernetes_versions=(1.29.0 1.37.0)

log() { printf '[manifests] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    log "installing python3-venv (apt-get)"
    as_root apt-get install -y python3 python3-venv >/dev/null 2>&1 || {
      as_root apt-get update >/dev/null
      as_root apt-get install -y python3 python3-venv >/dev/null
    }
  fi
  log "installing the validators into $venv (pip)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi

# kustomization.yaml is kustomize's, not an API resource: no schema.
manifests=()
for file in deploy/k8s/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
for version in "${kubernetes_versions[@]}"; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
  log "deploy/k8s: ${#manifests[@]} files valid for Kubernetes $version (strict)"
done
# Every resource kustomize is told to apply must be a file that was checked.
for resource in $(awk '/^resources:/ {on = 1; next} on && /^[^ -]/ {on = 0} on && /^ *- / {print $2}' deploy/k8s/kustomization.yaml); do
  [ -f "deploy/k8s/$resource" ] || { log "kustomization.yaml names a missing file: $resource"; exit 1; }
done
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
log "docker-compose.yml valid for the Compose Specification"
