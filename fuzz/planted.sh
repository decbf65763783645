#!/bin/sh
# Shows that each fuzz target's check can fire: builds the core with one
# planted bug at a time (`--cfg p2p_planted="<name>"`, see the
# `#[cfg(p2p_planted = ...)]` lines in core/src and the table in the
# README's fuzzing section), replays that target's committed corpus
# (fuzz-checks/tests/corpus.rs), and asserts that the replay FAILS with the
# expected check's panic message; then asserts that the unplanted build
# passes the whole corpus test.
#
#   fuzz/planted.sh            # every planted bug
#   fuzz/planted.sh node-stale-peer
#
# Each planted build has its own target directory (RUSTFLAGS rebuild every
# dependency), under $P2P_PLANTED_TARGET_DIR (default target/planted); the
# unplanted run uses CARGO_TARGET_DIR as usual. Exit status 0 only if
# every planted bug was caught and the unplanted build passed.
set -u
cd "$(dirname "$0")/.." || exit 2
planted_dir=${P2P_PLANTED_TARGET_DIR:-$PWD/target/planted}

# name|target|message the target's check panics with
BUGS='decode-off-by-one|decode|frames differ from the reference decoder
file-unverified-commit|file|content does not match the declared SHA-256
handshake-hello-without-colon|handshake|invalid hello: no ProtocolError
node-stale-peer|node|which is closed
swarm-unverified-write|swarm|bytes that do not match the manifest
manifest-colon-path|manifest|accepted a manifest with an unsafe path'

failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "$BUGS" | while IFS='|' read -r name target message; do
    if [ "$#" -gt 0 ]; then
        case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    printf '%s (%s): ' "$name" "$target"
    if RUSTFLAGS="--cfg p2p_planted=\"$name\"" CARGO_TARGET_DIR="$planted_dir/$name" \
        cargo test -q -p p2p-fuzz-checks --test corpus -- "replay_${target}_corpus" --exact \
        >"$log" 2>&1; then
        echo "NOT CAUGHT: the $target corpus replay passed"
        exit 1
    elif grep -qF -- "$message" "$log"; then
        echo "caught: $(grep -F -- "$message" "$log" | head -n 1)"
    else
        echo "FAILED otherwise (expected \"$message\"):"
        tail -n 30 "$log"
        exit 1
    fi
done || failed=1

printf 'unplanted: '
if cargo test -q -p p2p-fuzz-checks --test corpus >"$log" 2>&1; then
    echo "the corpus replay passes"
else
    echo "FAILED:"
    tail -n 30 "$log"
    failed=1
fi
exit "$failed"
