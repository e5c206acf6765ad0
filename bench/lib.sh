# Sourced by the bench scripts: what each one does before measuring.
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
