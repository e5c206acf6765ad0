# Sourced by the bench scripts: what each one does before measuring, and how it gets an earlier
# version's airgap to measure beside this one (bench_baseline, below).
#
# bench_setup NAME "$@" — on -h or --help, prints the calling script's header comment and exits.
# Otherwise: moves to the checkout's top, makes an empty $work (.cache/bench/NAME), builds airgap
# and the bench_layout example in release mode (into $CARGO_TARGET_DIR when it is set), sets $bin
# and $layout_bin to them, and kills every pid the script adds to the array `pids` on exit, on
# SIGTERM and on Ctrl-C.
bench_setup() {
  local name=$1
  shift
  case ${1:-} in
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
  esac
  cd "$(git rev-parse --show-toplevel)"
  work=$PWD/.cache/bench/$name
  rm -rf "$work" && mkdir -p "$work"
  cargo build --release -q -p airgap --bin airgap
  cargo build --release -q -p bundles --example bench_layout
  local target=${CARGO_TARGET_DIR:-$PWD/target}
  bin=$target/release/airgap
  layout_bin=$target/release/examples/bench_layout
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
  trap 'exit 143' TERM INT # so that the EXIT trap stops the servers on a signal too
}

# bench_baseline REV — prints the path of the airgap binary built in release mode from commit REV,
# for measuring an earlier version beside this one in the same run. Built once in a git worktree
# under .cache/bench/baselines with its own target dir there (never the checkout's target), the
# worktree removed after; the binary is kept as .cache/bench/baselines/airgap-<commit>.
bench_baseline() {
  local top sha dir tree out
  top=$(git rev-parse --show-toplevel)
  sha=$(git rev-parse --short=12 "$1^{commit}")
  dir=$top/.cache/bench/baselines
  out=$dir/airgap-$sha
  if [ ! -x "$out" ]; then
    tree=$dir/tree-$sha
    mkdir -p "$dir"
    git worktree add -q --detach "$tree" "$sha" >&2
    if ! (cd "$tree" && CARGO_TARGET_DIR=$dir/target cargo build --release -q -p airgap --bin airgap >&2); then
      git worktree remove --force "$tree"
      return 1
    fi
    cp "$dir/target/release/airgap" "$out.tmp" && mv "$out.tmp" "$out"
    git worktree remove --force "$tree"
  fi
  echo "$out"
}
