#!/usr/bin/env bash
# The release as PGXN gets it: META.json valid against the PGXN Meta Spec
# 1.0.0 (test/prove/pgxn_meta.jq, which must also reject broken copies of it)
# and consistent with the Makefile, the control file and LICENSE; then
# `make dist` writes coupon_lock-X.Y.0.zip from git archive of HEAD, holding
# exactly the committed files under one folder, and the unpacked archive
# builds and stages an install with every script of every version.
# Needs no server.  Writes only under tmp/test/dist.
set -u
. "$(dirname "$0")/common.sh"
DIST=$PV_TMP/dist
rm -rf "$DIST"; mkdir -p "$DIST"
META=$CL_ROOT/META.json
EXTVERSION=$(sed -n 's/^EXTVERSION *= *//p' "$CL_ROOT/Makefile")
CONTROL_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$CL_ROOT/coupon_lock.control")

echo "== META.json"
errors=$(jq -r -f "$PV_DIR/pgxn_meta.jq" "$META" 2>&1)
pv_check "META.json is valid against the PGXN Meta Spec 1.0.0" test -z "$errors" || echo "$errors"
# The validator must catch what it claims to check.
for broken in 'del(.license)' 'del(.provides)' '.version = "1.1"' '.provides.coupon_lock.file = 7' \
              '.["meta-spec"].version = "2.0.0"' '.license = "PostgreSQL"' '.colour = "blue"' \
              '.prereqs.runtime.requires.PostgreSQL = "15"' '.tags = ["a/b"]' '.name = "x"'; do
    n=$(jq "$broken" "$META" | jq -r -f "$PV_DIR/pgxn_meta.jq" | grep -c .)
    pv_check "the validator rejects META.json with $broken ($n errors)" test "$n" -gt 0
done
read -r version cl_version cl_file pg license < <(jq -r '[.version, .provides.coupon_lock.version,
    .provides.coupon_lock.file, .prereqs.runtime.requires.PostgreSQL, .license] | @tsv' "$META")
pv_check "version $version = the Makefile's $EXTVERSION and the control file's $CONTROL_VERSION as x.y.0" \
    test "$version" = "$EXTVERSION.0" -a "$CONTROL_VERSION" = "$EXTVERSION" -a "$cl_version" = "$version"
pv_check "provides coupon_lock from coupon_lock--$EXTVERSION.sql ($cl_file)" test "$cl_file" = "coupon_lock--$EXTVERSION.sql"
pv_check "requires PostgreSQL 15 ($pg)" test "$pg" = 15.0.0
pv_check "license $license, and LICENSE is the PostgreSQL License of the coupon_lock developers" \
    test "$license" = postgresql -a "$(head -n 1 "$CL_ROOT/LICENSE")" = "PostgreSQL License" -a \
         "$(grep -c 'Copyright (c) [0-9]*, the coupon_lock developers' "$CL_ROOT/LICENSE")" = 1

echo "== make dist"
zip=$DIST/coupon_lock-$version.zip
make -C "$CL_ROOT" -s dist DISTDIR="$DIST" >"$DIST/make.log" 2>&1
pv_check "make dist writes $(basename "$zip")" test -s "$zip" || cat "$DIST/make.log"
unzip -Z1 "$zip" 2>/dev/null | grep -v '/$' | sort >"$DIST/archive.txt"
git -C "$CL_ROOT" ls-tree -r --name-only HEAD | sed "s|^|coupon_lock-$version/|" | sort >"$DIST/head.txt"
pv_check "the archive holds exactly the files of HEAD under coupon_lock-$version/ ($(wc -l <"$DIST/archive.txt") files)" \
    cmp -s "$DIST/archive.txt" "$DIST/head.txt" || diff "$DIST/head.txt" "$DIST/archive.txt" | head -n 20
missing=""
for f in coupon_lock.control Makefile META.json LICENSE README.md versions/coupon_lock--1.0.sql install/coupon.sql \
         src/coupon_lock.c; do
    grep -qx "coupon_lock-$version/$f" "$DIST/archive.txt" || missing="$missing $f"
done
pv_check "it has the control file, Makefile, META.json, LICENSE, README, versions, install and src${missing:+ (missing:$missing)}" \
    test -z "$missing"
built=$(grep -E '\.(o|so|bc)$|coupon_lock--[0-9.]+(--[0-9.]+)?\.sql$' "$DIST/archive.txt" | grep -vc "/versions/")
pv_check "and no build output ($built files)" test "$built" = 0

echo "== the archive builds"
(cd "$DIST" && unzip -q "$zip")
tree=$DIST/coupon_lock-$version
if make -C "$tree" -s >"$DIST/build.log" 2>&1; then
    warnings=$(grep -c 'warning:' "$DIST/build.log")
    pv_check "the unpacked archive builds, without warnings ($warnings)" test "$warnings" = 0 || grep 'warning:' "$DIST/build.log" | head
else
    pv_fail "the unpacked archive builds"; tail -n 20 "$DIST/build.log"
fi
if make -C "$tree" -s install DESTDIR="$DIST/stage" >"$DIST/install.log" 2>&1; then
    share=$DIST/stage$(${PG_CONFIG:-pg_config} --sharedir)/extension
    lib=$DIST/stage$(${PG_CONFIG:-pg_config} --pkglibdir)
    missing=""
    for f in "$share/coupon_lock.control" "$share/coupon_lock--1.0.sql" "$share/coupon_lock--$EXTVERSION.sql" \
             "$share/coupon_lock--1.0--$EXTVERSION.sql" "$lib/coupon_lock.so"; do
        [ -s "$f" ] || missing="$missing $(basename "$f")"
    done
    pv_check "make install stages the control file, the library and the scripts of 1.0, $EXTVERSION and 1.0--$EXTVERSION${missing:+ (missing:$missing)}" \
        test -z "$missing"
else
    pv_fail "make install DESTDIR=... from the unpacked archive"; tail -n 20 "$DIST/install.log"
fi
# Every file META.json says the distribution provides exists once built.
while IFS=$'\t' read -r ext file; do
    if [ "$ext" != coupon_lock ] && [ ! -d "$tree/$(dirname "$file")" ]; then
        pv_skip "provides $ext: $(dirname "$file")/ is not in this tree yet"
        continue
    fi
    [ -f "$tree/$file" ] || make -C "$tree/$(dirname "$file")" -s >/dev/null 2>&1
    pv_check "provides $ext: $file exists in the built archive" test -f "$tree/$file"
done < <(jq -r '.provides | to_entries[] | [.key, .value.file] | @tsv' "$META")
# and every docfile is in the archive as it is
while IFS=$'\t' read -r ext file; do
    pv_check "provides $ext: its docfile $file is in the archive" test -f "$tree/$file"
done < <(jq -r '.provides | to_entries[] | select(.value.docfile) | [.key, .value.docfile] | @tsv' "$META")
pv_done dist
