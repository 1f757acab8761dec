#!/usr/bin/env bash
# The installed coupon_lock.so exports only what PostgreSQL looks up: the
# module magic, _PG_init and the SQL functions (coupon_lock_*, with their
# pg_finfo_ records).  Every other name stays local (src/exports.map), so
# nothing of ours can clash with another library loaded with RTLD_GLOBAL.
# Also checks that every C function the installed SQL names is exported.
set -eu
. "$(dirname "$0")/../lib.sh"

so="$(${PG_CONFIG:-pg_config} --pkglibdir)/coupon_lock.so"
[ -f "$so" ] || cl_die "$so is not installed"
syms=$(nm -D --defined-only "$so" | awk '{print $3}')
[ -n "$syms" ] || cl_die "nm found no symbols in $so"
stray=$(grep -vE '^(Pg_magic_func|_PG_init|coupon_lock_[A-Za-z0-9_]+|pg_finfo_coupon_lock_[A-Za-z0-9_]+)$' <<<"$syms" || true)
if [ -n "$stray" ]; then
    echo "exported beyond PostgreSQL's entry points:"; echo "$stray"; exit 1
fi
echo "exports: $(wc -l <<<"$syms") symbols, all entry points"

# Every 'MODULE_PATHNAME', 'symbol' of the installed scripts is exported.
share="$(${PG_CONFIG:-pg_config} --sharedir)/extension"
missing=0
for sym in $(grep -ohE "'MODULE_PATHNAME', *'[A-Za-z0-9_]+'" "$share"/coupon_lock--*.sql | sed -E "s/.*'([A-Za-z0-9_]+)'$/\1/" | sort -u); do
    grep -qx "$sym" <<<"$syms" || { echo "not exported: $sym"; missing=1; }
done
[ "$missing" = 0 ] || exit 1
echo "every C function of the installed scripts is exported"
