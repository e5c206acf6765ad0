#!/usr/bin/env bash
# Installs and caches the real peers that airgap's tests run against (see tests/README.md).
#
#   tests/tools/install.sh            # everything
#   tests/tools/install.sh helm k8s   # only the named steps
#
# Each step leaves a stamp holding its version; a step whose stamp matches is skipped, so a second
# run costs seconds. AIRGAP_TOOLS_DIR moves the cache (default: <repo>/.cache/tools).
# After apt, the steps run as background jobs, INSTALL_JOBS at a time (default: the CPU count),
# longest first; each writes its own log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# git itself may be among what this script is about to install.
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || { cd "$HERE/../.." && pwd; })
TOOLS=${AIRGAP_TOOLS_DIR:-$ROOT/.cache/tools}
BIN=$TOOLS/bin
STAMPS=$TOOLS/stamps
LOGS=$TOOLS/logs
WORK=$TOOLS/work
mkdir -p "$BIN" "$STAMPS" "$LOGS" "$WORK"

HELM_PINNED=v3.8.2
HELM_LATEST=v3.22.0
ORAS=v1.3.6
CRANE=v0.22.1
# Userspace Wireguard: the site-wireguard tunnel test uses it where the kernel has no wireguard module.
WIREGUARD_GO=v0.0.0-20260522210424-ecfc5a8d5446
KWOK=v0.8.0
K8S=v1.24.17
# The conformance module has no tags of its own on the module proxy; this is the newest commit there.
CONFORMANCE=v0.0.0-20260831232431-97274622c111
MINIO=v0.0.0-20260212201848-7aac2a2c5b7c
MC=v0.0.0-20250313080218-cf909e1063a9
# Istio tags releases without a "v" (1.15.0), which the module proxy does not serve: the newest
# pseudo-version it does serve is built instead (tests/README.md).
ISTIOCTL=v0.0.0-20260827124520-eed52ebb66ad
# The real nodes' volume provisioner (tests/testkit/src/local_path.rs).
LOCAL_PATH=v0.0.30
# Debian bullseye's git, the last release before git read GIT_CONFIG_COUNT (2.31), as the Debian
# package registry publishes it (`apt-cache show git` on bullseye gives the SHA-256).
OLD_GIT=2.30.2-1+deb11u2
OLD_GIT_SHA256=ddc8eb5da311dbf0ecfe4bd4da5f539aeecec22865828538b5c86039af2eca8c
# Alertmanager and amtool at the version rancher-monitoring 100.1.3+up19.0.3 runs (its image
# rancher/mirrored-prometheus-alertmanager:v0.22.2): the alerting tests validate and deliver with it.
ALERTMANAGER=v0.22.2
# What the MOSIP observation cluster runs (bitnami/keycloak 16.1.1): the WildFly distribution from
# Maven Central, for the saml step's test (installer/tests/saml.rs). Needs java and mvn.
KEYCLOAK=16.1.1
SPDX_TOOLS=0.8.5
CYCLONEDX_LIB=11.12.0
JSONSCHEMA=4.26.0

APT_PACKAGES=(docker-registry skopeo podman umoci minisign git wrk apache2-utils etcd-server jq zstd openssl
  containerd runc wireguard-tools python3-venv time ca-certificates curl
  containernetworking-plugins iptables nftables iproute2 busybox-static openjdk-17-jdk-headless chromium
  python3-aiosmtpd maven)

export PATH=$BIN:$PATH:/usr/local/go/bin
# Builds use the machine's Go as it is: never fetch another toolchain.
export GOTOOLCHAIN=local GOFLAGS=-trimpath CGO_ENABLED=0

ONLY=("$@")
JOBS=${INSTALL_JOBS:-$(nproc)}
# Each step leaves its summary line and its outcome here: background jobs cannot write the main
# shell's variables.
RESULTS=$WORK/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
ORDER=()

wanted() {
  [[ ${#ONLY[@]} -eq 0 ]] && return 0
  local s
  for s in "${ONLY[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}

# run_step NAME KEY OPTIONAL FUNC...: runs FUNC unless NAME's stamp holds KEY, and records the
# outcome (ok, failed, optional) in $RESULTS/NAME.rc and a summary line in $RESULTS/NAME. A failed
# optional step is reported but does not fail the script.
run_step() {
  local name=$1 key=$2 optional=$3
  shift 3
  local stamp=$STAMPS/$name log=$LOGS/$name.log
  if [[ -f $stamp && $(<"$stamp") == "$key" ]]; then
    printf '%-14s %-40s cached\n' "$name" "$key" >"$RESULTS/$name"
    echo ok >"$RESULTS/$name.rc"
    return 0
  fi
  echo ">> $name $key (log: $log)"
  local start=$SECONDS rc
  # Bash ignores `set -e` inside anything run as an `if` condition, so the step runs in a
  # subshell of its own whose status is read afterwards.
  set +e
  (
    set -e
    "$@"
  ) >"$log" 2>&1
  rc=$?
  set -e
  local took=$((SECONDS - start))
  if [[ $rc -eq 0 ]]; then
    echo "$key" >"$stamp"
    printf '%-14s %-40s built in %ss\n' "$name" "$key" "$took" >"$RESULTS/$name"
    echo ok >"$RESULTS/$name.rc"
    echo "<< $name built in ${took}s"
  else
    tail -n 25 "$log" | sed "s/^/   $name | /"
    if [[ $optional == optional ]]; then
      printf '%-14s %-40s FAILED (optional) after %ss, see %s\n' "$name" "$key" "$took" "$log" >"$RESULTS/$name"
      echo optional >"$RESULTS/$name.rc"
    else
      printf '%-14s %-40s FAILED after %ss, see %s\n' "$name" "$key" "$took" "$log" >"$RESULTS/$name"
      echo failed >"$RESULTS/$name.rc"
    fi
  fi
}

# step NAME KEY OPTIONAL FUNC...: run_step in the foreground, for what later steps need.
step() {
  wanted "$1" || return 0
  ORDER+=("$1")
  run_step "$@"
}

# step_bg NAME KEY OPTIONAL FUNC...: run_step as a background job once fewer than $JOBS run. The Go
# builds share Go's build and module caches, which Go locks for concurrent use.
step_bg() {
  wanted "$1" || return 0
  ORDER+=("$1")
  while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || true; done
  run_step "$@" &
}

apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  command -v go >/dev/null || { echo "Go is needed (looked in PATH and /usr/local/go/bin)"; return 1; }
  go version
}

# go_install NAME PACKAGE@VERSION [LDFLAGS]: builds one command into $BIN/NAME.
go_install() {
  local name=$1 pkg=$2 ldflags=${3:-}
  local out=$WORK/gobin-$name
  rm -rf "$out"
  GOBIN=$out go install -ldflags "-s -w $ldflags" "$pkg"
  local built=("$out"/*)
  [[ ${#built[@]} -eq 1 ]]
  mv -f "${built[0]}" "$BIN/$name"
  rm -rf "$out"
}

helm_pinned() {
  go_install "helm-${HELM_PINNED#v}" "helm.sh/helm/v3/cmd/helm@$HELM_PINNED" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_PINNED -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ln -sfn "helm-${HELM_PINNED#v}" "$BIN/helm"
}

helm_latest() {
  go_install helm-latest "helm.sh/helm/v3/cmd/helm@$HELM_LATEST" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_LATEST -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}

conformance() {
  local dir
  dir=$(go mod download -json "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE" | jq -r .Dir)
  (cd "$dir" && go build -ldflags "-s -w" -o "$BIN/oci-conformance" .)
}

# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging modules with local
# directories), so tests/tools/k8s is a module that requires it with the same pins.
k8s() {
  local v=$K8S minor=${K8S#v1.}
  minor=${minor%%.*}
  local ld="-s -w" p
  # Without these the server reports v0.0.0 and charts' kubeVersion constraints fail.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local out=$WORK/k8s-out
  rm -rf "$out"
  mkdir -p "$out"
  (cd "$ROOT/tests/tools/k8s" && /usr/bin/time -v -o "$LOGS/k8s.time" go build -ldflags "$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  mv -f "$out"/* "$BIN/"
  grep -E 'Elapsed|Maximum resident' "$LOGS/k8s.time"
}

# istiod (pilot-discovery) from the same module version as istioctl, in one `go install` so that the
# two share compiled packages: the real-node tests run it as Istio's control plane.
istio() {
  local out=$WORK/gobin-istio
  rm -rf "$out"
  GOBIN=$out go install -ldflags "-s -w" "istio.io/istio/istioctl/cmd/istioctl@$ISTIOCTL" \
    "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIOCTL"
  mv -f "$out/istioctl" "$out/pilot-discovery" "$BIN/"
  rm -rf "$out"
}

# Rancher's local-path-provisioner, built from its module with one thing more: the provisioner
# names in $LOCAL_PATH_ADDITIONAL_PROVISIONER_NAMES (comma-separated) are its too, through
# sig-storage-lib-external-provisioner's AdditionalProvisionerNames, as a CSI driver serves the
# classes of the in-tree plugin it replaces under CSI migration (EKS's gp2 names kubernetes.io/aws-ebs,
# whose claims the controller manager hands to ebs.csi.aws.com).
local_path() {
  local src
  src=$(go mod download -json "github.com/rancher/local-path-provisioner@$LOCAL_PATH" | jq -r .Dir)
  rm -rf "$WORK/local-path-src"
  cp -r "$src" "$WORK/local-path-src"
  chmod -R u+w "$WORK/local-path-src"
  cd "$WORK/local-path-src"
  rm -rf vendor
  sed -i 's/^\t\tpvController.LeaderElection(false),$/&\n\t\tpvController.AdditionalProvisionerNames(additionalProvisionerNames()),/' main.go
  grep -q 'AdditionalProvisionerNames(additionalProvisionerNames())' main.go
  cat >additional_names.go <<'GO'
package main

import (
	"os"
	"strings"
)

func additionalProvisionerNames() []string {
	names := os.Getenv("LOCAL_PATH_ADDITIONAL_PROVISIONER_NAMES")
	if names == "" {
		return nil
	}
	return strings.Split(names, ",")
}
GO
  go build -mod=mod -ldflags "-s -w" -o "$BIN/local-path-provisioner" .
  cd "$ROOT"
  rm -rf "$WORK/local-path-src"
}

# The stand-in program of the real-node tests (tests/tools/standin), static like every Go build here.
standin() {
  (cd "$ROOT/tests/tools/standin" && go build -ldflags "-s -w" -o "$BIN/standin" .)
}

# The old git, extracted from its package and run with this machine's libraries (bookworm keeps
# the sonames bullseye's git links): installer/tests/gitconfig_redirect.rs clones with it.
old_git() {
  local version=${OLD_GIT%%-*} deb=$WORK/git_${OLD_GIT}_amd64.deb
  local dir=$TOOLS/git-$version
  curl -fsSL -o "$deb" "http://deb.debian.org/debian/pool/main/g/git/git_${OLD_GIT}_amd64.deb"
  echo "$OLD_GIT_SHA256  $deb" | sha256sum -c
  rm -rf "$dir"
  dpkg-deb -x "$deb" "$dir"
  rm -f "$deb"
  printf '#!/bin/sh\nGIT_EXEC_PATH=%s/usr/lib/git-core exec %s/usr/bin/git "$@"\n' "$dir" "$dir" >"$BIN/git-$version"
  chmod +x "$BIN/git-$version"
  "$BIN/git-$version" --version
}

# alertmanager and amtool, from one module version in one `go install`.
alertmanager() {
  local out=$WORK/gobin-alertmanager
  rm -rf "$out"
  GOBIN=$out go install -ldflags "-s -w" "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER" \
    "github.com/prometheus/alertmanager/cmd/amtool@$ALERTMANAGER"
  mv -f "$out/alertmanager" "$out/amtool" "$BIN/"
  rm -rf "$out"
}

# keycloak-standalone BASE PASSWORD [ARGS]: a server whose data and configuration live in BASE
# (made from the distribution's on first use), with the master realm's admin `admin`.
keycloak() {
  mvn -q dependency:get "-Dartifact=org.keycloak:keycloak-server-dist:$KEYCLOAK:zip" -Dtransitive=false
  local zip=$HOME/.m2/repository/org/keycloak/keycloak-server-dist/$KEYCLOAK/keycloak-server-dist-$KEYCLOAK.zip
  rm -rf "$TOOLS/keycloak-$KEYCLOAK"
  unzip -q "$zip" -d "$TOOLS"
  local dist=$TOOLS/keycloak-$KEYCLOAK
  cat >"$BIN/keycloak-standalone" <<EOF
#!/bin/sh
set -e
base=\$1 password=\$2
shift 2
if [ ! -d "\$base" ]; then
  cp -r "$dist/standalone" "\$base"
  "$dist/bin/add-user-keycloak.sh" --sc "\$base/configuration" -r master -u admin -p "\$password" >/dev/null
fi
exec "$dist/bin/standalone.sh" "-Djboss.server.base.dir=\$base" "\$@"
EOF
  printf '#!/bin/sh\nexec "%s/bin/kcadm.sh" "$@"\n' "$dist" >"$BIN/kcadm.sh"
  chmod +x "$BIN/keycloak-standalone" "$BIN/kcadm.sh"
}

python_venv() {
  rm -rf "$TOOLS/venv"
  /usr/bin/python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --disable-pip-version-check -q "spdx-tools==$SPDX_TOOLS" \
    "cyclonedx-python-lib[json-validation]==$CYCLONEDX_LIB" "jsonschema==$JSONSCHEMA"
  ln -sfn ../venv/bin/pyspdxtools "$BIN/pyspdxtools"
  cat >"$BIN/validate-cyclonedx" <<EOF
#!/bin/sh
exec "$TOOLS/venv/bin/python" "$ROOT/tests/tools/validate-cyclonedx.py" "\$@"
EOF
  chmod +x "$BIN/validate-cyclonedx"
}

standin_key=$(cat "$ROOT/tests/tools/standin/go.mod" "$ROOT"/tests/tools/standin/*.go | sha256sum | cut -c1-12)
k8s_key=$K8S-$(cat "$ROOT/tests/tools/k8s/go.mod" "$ROOT/tests/tools/k8s/go.sum" 2>/dev/null | sha256sum | cut -c1-12)

STARTED=$SECONDS
step apt "$(printf '%s\n' "${APT_PACKAGES[@]}" | sha256sum | cut -c1-12)" required apt_packages
# Longest first (cold times in tests/README.md), so that the short ones fill in at the end.
step_bg k8s "$k8s_key" required k8s
step_bg minio "$MINIO" required go_install minio "github.com/minio/minio@$MINIO"
step_bg istioctl "$ISTIOCTL-pilot-discovery" required istio
step_bg kwok "$KWOK" required go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK"
# Nothing in the tests runs it yet: a failure is shown but does not fail the script.
step_bg helm-latest "$HELM_LATEST" optional helm_latest
step_bg helm "$HELM_PINNED" required helm_pinned
step_bg mc "$MC" required go_install mc "github.com/minio/mc@$MC"
step_bg python "spdx-$SPDX_TOOLS-cdx-$CYCLONEDX_LIB-js-$JSONSCHEMA" required python_venv
step_bg oras "$ORAS" required go_install oras "oras.land/oras/cmd/oras@$ORAS"
step_bg crane "$CRANE" required go_install crane "github.com/google/go-containerregistry/cmd/crane@$CRANE"
step_bg conformance "$CONFORMANCE" required conformance
step_bg local-path "$LOCAL_PATH-additional-names" required local_path
step_bg standin "$standin_key" required standin
step_bg old-git "$OLD_GIT" required old_git
step_bg alertmanager "$ALERTMANAGER" required alertmanager
step_bg keycloak "$KEYCLOAK" required keycloak
step_bg wireguard-go "$WIREGUARD_GO" optional go_install wireguard-go "golang.zx2c4.com/wireguard@$WIREGUARD_GO"
wait

FAILED=0
echo
echo "tools in $BIN ($JOBS jobs at a time, ${SECONDS}s in all, $((SECONDS - STARTED))s for the steps):"
for name in "${ORDER[@]}"; do
  if [[ -f $RESULTS/$name ]]; then
    printf '  %s\n' "$(<"$RESULTS/$name")"
  else
    printf '  %-14s did not report (killed?), see %s\n' "$name" "$LOGS/$name.log"
  fi
  [[ $(cat "$RESULTS/$name.rc" 2>/dev/null) == @(ok|optional) ]] || FAILED=1
done
exit $FAILED
