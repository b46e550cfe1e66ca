#!/bin/sh
# Builds the recommendation component (Python) with componentize-py, into
# target/wasm32-wasip2/release/boutique_recommendation.wasm beside the Rust
# components. componentize-py comes from PyPI, installed on first use into a
# virtual environment that this script creates (target/python-venv, which
# the tests share). A component newer than its sources is left as it is.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH= cd -- "$here/../../.." && pwd)
# As cargo does: a relative CARGO_TARGET_DIR is relative to where it runs.
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
venv=$target/python-venv
pin=componentize-py==0.25.1
out=$target/wasm32-wasip2/release/boutique_recommendation.wasm

newer=$(find "$here" "$here/../wit" "$root/wit/deps" -newer "$out" -type f ! -path '*/__pycache__/*' 2>/dev/null || echo missing)
if [ -e "$out" ] && [ -z "$newer" ]; then
    exit 0
fi
if [ ! -e "$venv/.$pin" ]; then
    python3 -m venv "$venv" || {
        echo "recommendation: cannot make a virtual environment in $venv: install Python 3.10 or newer with its venv module (on Debian: apt-get install python3 python3-venv)" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin" || {
        echo "recommendation: pip could not install $pin from PyPI into $venv" >&2
        exit 1
    }
    touch "$venv/.$pin"
fi
mkdir -p "$(dirname "$out")"
cd "$root"
"$venv/bin/componentize-py" --quiet \
    -d wit/deps/config -d wit/deps/keyvalue -d wit/deps/logging -d samples/boutique/wit \
    -w boutique:shop/recommendation-component \
    componentize -p samples/boutique/recommendation app -o "$out"
