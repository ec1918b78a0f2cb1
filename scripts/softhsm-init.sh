#!/bin/sh
# Create (idempotently) a private softhsm2 configuration and an initialised token for ecert.
#
# Usage: scripts/softhsm-init.sh [DIR]
#   DIR                 where softhsm2.conf and tokens/ live (default /tmp/ecert-softhsm)
#   ECERT_HSM_LABEL     token label          (default "ecert")
#   ECERT_HSM_SO_PIN    security officer PIN (default "so-pin-1234", for tests only)
#   ECERT_HSM_USER_PIN  user PIN             (default "user-pin-1234", for tests only)
#
# Prints one line on stdout, `export SOFTHSM2_CONF=DIR/softhsm2.conf`, so a shell can
# `eval "$(scripts/softhsm-init.sh)"`. Running it again reuses the token that is there.
set -eu

dir="${1:-/tmp/ecert-softhsm}"
label="${ECERT_HSM_LABEL:-ecert}"
so_pin="${ECERT_HSM_SO_PIN:-so-pin-1234}"
user_pin="${ECERT_HSM_USER_PIN:-user-pin-1234}"

command -v softhsm2-util >/dev/null 2>&1 || {
    echo "softhsm2-util not found: apt-get install -y softhsm2" >&2
    exit 1
}

mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
dir="$(cd "$dir" && pwd)"
conf="$dir/softhsm2.conf"

if [ ! -f "$conf" ]; then
    umask 077
    tmp="$conf.tmp.$$"
    cat >"$tmp" <<CONF
# softhsm2 configuration written by ecert scripts/softhsm-init.sh
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    mv "$tmp" "$conf"
fi

SOFTHSM2_CONF="$conf"
export SOFTHSM2_CONF

# A token with our label already initialised: nothing to do (the PINs are the caller's concern).
if softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+$label[[:space:]]*$"; then
    echo "softhsm2: token \"$label\" already present in $dir/tokens" >&2
else
    softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >&2
fi

echo "export SOFTHSM2_CONF=$conf"
