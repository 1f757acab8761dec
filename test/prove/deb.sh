#!/usr/bin/env bash
# The Debian package (debian/): built with dpkg-buildpackage -us -uc -b in a
# copy of the tree under tmp/test/deb (no build output in the checkout),
# checked with lintian (clean but for the overrides debian/*.lintian-overrides
# explains), installed with dpkg -i, used from a cluster of the SYSTEM's
# PostgreSQL binaries (where the package installs) on CL_DEB_PGPORT (default
# 55015) -- coupon_lock, and coupon_lock_router over one shard with plproxy --
# then purged.  Whatever files of the extension the system's
# PostgreSQL held before are put back afterwards; test/test.sh then
# reinstalls the suite's build.  Runs as root (dpkg -i), or through sudo.
set -u
. "$(dirname "$0")/common.sh"
DEB=$PV_TMP/deb
PORT=${CL_DEB_PGPORT:-55015}
SYSBIN=/usr/lib/postgresql/15/bin
PKG=postgresql-15-coupon-lock
EXTVERSION=$(sed -n 's/^EXTVERSION *= *//p' "$CL_ROOT/Makefile")
DEBVERSION=$(dpkg-parsechangelog -l "$CL_ROOT/debian/changelog" -S Version)

cl_pg_stop deb 2>/dev/null
rm -rf "$DEB" "$CL_ROOT/tmp/deb"; mkdir -p "$DEB/src"

echo "== build"
# The tree as it is (tracked files and new ones git does not ignore).
(cd "$CL_ROOT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$DEB/src" -xf -
pv_check "debian/control is what debian/control.in and debian/pgversions give" \
    bash -c "cd '$DEB/src' && pg_buildext checkcontrol >'$DEB/checkcontrol.log' 2>&1" || cat "$DEB/checkcontrol.log"
start=$(date +%s)
# pg_buildext finds each version's pg_config itself; the suite's PG_CONFIG
# (a private PostgreSQL, maybe) must not leak into the package build.
if (cd "$DEB/src" && env -u PG_CONFIG dpkg-buildpackage -us -uc -b >"$DEB/build.log" 2>&1); then
    pv_ok "dpkg-buildpackage -us -uc -b in $(( $(date +%s) - start )) s"
else
    pv_fail "dpkg-buildpackage -us -uc -b"; tail -n 30 "$DEB/build.log"
fi
deb=$DEB/${PKG}_${DEBVERSION}_$(dpkg --print-architecture).deb
pv_check "it built $(basename "$deb")" test -s "$deb" || { pv_done deb; exit 1; }
warnings=$(grep -c 'warning:' "$DEB/build.log")
pv_check "without compiler warnings ($warnings)" test "$warnings" = 0 || grep 'warning:' "$DEB/build.log" | head
pv_check "the checkout has no build output of the package (build-15/, debian/$PKG/, debian/files ...)" \
    test -z "$(cd "$CL_ROOT" && ls -d build-15 "debian/$PKG" debian/files debian/*.substvars debian/.debhelper \
                                      debian/debhelper-build-stamp 2>/dev/null)"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$DEB/contents.txt"
missing=""
for f in /usr/lib/postgresql/15/lib/coupon_lock.so /usr/share/postgresql/15/extension/coupon_lock.control \
         /usr/share/postgresql/15/extension/coupon_lock--1.0.sql \
         "/usr/share/postgresql/15/extension/coupon_lock--$EXTVERSION.sql" \
         "/usr/share/postgresql/15/extension/coupon_lock--1.0--$EXTVERSION.sql" \
         /usr/share/postgresql/15/extension/coupon_lock_router.control \
         "/usr/share/postgresql/15/extension/coupon_lock_router--$EXTVERSION.sql" \
         "/usr/share/doc/$PKG/copyright" "/usr/share/doc/$PKG/README.md.gz"; do
    grep -qx "$f" "$DEB/contents.txt" || missing="$missing $f"
done
pv_check "the package holds the library, the control file, the scripts of 1.0, $EXTVERSION and 1.0--$EXTVERSION, coupon_lock_router's control file and script, copyright and README${missing:+ (missing:$missing)}" \
    test -z "$missing"
depends=$(dpkg-deb -f "$deb" Depends)
pv_check "it depends on postgresql-15 and libhiredis ($depends)" \
    bash -c "grep -q 'postgresql-15' <<<'$depends' && grep -q 'libhiredis' <<<'$depends'"

echo "== lintian"
lintian --fail-on error,warning --display-info "$deb" >"$DEB/lintian.log" 2>&1
rc=$?
grep -v 'running with root privileges' "$DEB/lintian.log"
pv_check "lintian: no error or warning, every override explained in debian/*.lintian-overrides" test "$rc" = 0
unexplained=$(awk '/^#/ { c = 1; next } /^[^ \t]/ { if (!c) print; c = 0 }' "$CL_ROOT"/debian/*.lintian-overrides)
pv_check "each override follows a comment saying why" test -z "$unexplained" || echo "$unexplained"

echo "== dpkg -i, CREATE EXTENSION from the package, dpkg --purge"
was_installed=$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -c 'ok installed')
pv_check "$PKG is not installed before the layer" test "$was_installed" = 0
# Keep the extension's files the system's PostgreSQL has now (a make install
# into it, as test/test.sh does in CI), to put them back after the purge.
# Files only, one by one: a copy of a folder tree onto / would also copy the
# folders' modes onto /usr and below.
grep -E '/coupon_lock[^/]*$' "$DEB/contents.txt" >"$DEB/files.txt"
: >"$DEB/saved.txt"
while read -r f; do
    if [ -f "$f" ]; then
        cp -p "$f" "$DEB/saved.$(basename "$f")" && echo "$f" >>"$DEB/saved.txt"
    fi
done <"$DEB/files.txt"
saved=$(wc -l <"$DEB/saved.txt")
# The folders the package installs into, up to /, as they are now.
dirs_state() {
    while read -r f; do d=$f; while [ "$d" != / ]; do d=$(dirname "$d"); echo "$d"; done; done <"$DEB/files.txt" |
        sort -u | xargs stat -c '%a %U:%G %n'
}
dirs_state >"$DEB/dirs_before.txt"
if cl_as_root dpkg -i "$deb" >"$DEB/dpkg_i.log" 2>&1; then pv_ok "dpkg -i $(basename "$deb")"
else pv_fail "dpkg -i"; cat "$DEB/dpkg_i.log"; fi
owner=$(dpkg -S /usr/lib/postgresql/15/lib/coupon_lock.so 2>/dev/null | cut -d: -f1)
pv_check "the library in the system's PostgreSQL is the package's ($owner)" test "$owner" = "$PKG"

CL_PGBIN=$SYSBIN cl_pg_start deb "$PORT" >/dev/null
sys_psql() { "$SYSBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
pv_check "a cluster of the system's binaries ($SYSBIN) preloads the package's library" \
    test "$(sys_psql -d postgres -c "SHOW shared_preload_libraries")" = coupon_lock
out=$(sys_psql -d postgres -c "CREATE EXTENSION coupon_lock" \
    -c "SELECT extversion || ' ' || coupon_lock.library_version() FROM pg_extension WHERE extname = 'coupon_lock'" 2>&1)
pv_check "CREATE EXTENSION coupon_lock from the package: version and library_version() $EXTVERSION ($out)" \
    test "$out" = "$EXTVERSION $EXTVERSION"
out=$(sys_psql -d postgres 2>&1 <<'SQL'
SELECT coupon_lock.create_batch('deb', 2) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'owner-1') IS NOT NULL, coupon_lock.coupon_claim(:b, 'owner-2') IS NOT NULL,
       coupon_lock.coupon_claim(:b, 'owner-3') IS NULL;
SQL
)
pv_check "a batch of 2 hands out 2 claims and then NULL ($out)" test "$out" = "t|t|t"
out=$(sys_psql -d postgres -c "CREATE DATABASE deb_upgrade" 2>&1 &&
      sys_psql -d deb_upgrade -c "CREATE EXTENSION coupon_lock VERSION '1.0'" -c "ALTER EXTENSION coupon_lock UPDATE" \
          -c "SELECT extversion FROM pg_extension WHERE extname = 'coupon_lock'" 2>&1)
pv_check "the package's 1.0 script and upgrade take a database from 1.0 to $EXTVERSION ($out)" test "$out" = "$EXTVERSION"
# The router from the package: a router database over one shard database
# of the same cluster, set up as shared/API.md shows, with plproxy (Debian's
# postgresql-15-plproxy, installed for the system's PostgreSQL).
out=$(sys_psql -d postgres -c "CREATE DATABASE deb_shard" -c "CREATE DATABASE deb_router" 2>&1 &&
      sys_psql -d deb_shard -c "CREATE EXTENSION coupon_lock" 2>&1 &&
      sys_psql -d deb_router 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION coupon_lock_router CASCADE;
CREATE SERVER coupon_lock_shards FOREIGN DATA WRAPPER plproxy
    OPTIONS (p0 'host=127.0.0.1 port=$PORT dbname=deb_shard connect_timeout=2');
CREATE USER MAPPING FOR PUBLIC SERVER coupon_lock_shards OPTIONS (user 'postgres');
SELECT coupon_lock.router_init() AS partitions \gset
SELECT coupon_lock.create_batch('deb routed', 2) AS b \gset
SELECT :partitions, (SELECT extversion FROM pg_extension WHERE extname = 'coupon_lock_router'),
       coupon_lock.coupon_claim(:b, 'owner-1') IS NOT NULL, coupon_lock.coupon_claim(:b, 'owner-2') IS NOT NULL,
       coupon_lock.coupon_claim(:b, 'owner-3') IS NULL,
       (SELECT count(*) FROM coupon_lock.coupon WHERE batch_id = :b AND state = 'issued');
SQL
)
pv_check "CREATE EXTENSION coupon_lock_router CASCADE from the package: set up over one shard, version $EXTVERSION, a batch of 2 through it hands out 2 claims and then NULL ($out)" \
    test "$out" = "1|$EXTVERSION|t|t|t|2"
out=$(sys_psql -d deb_router -c "SET client_min_messages = warning" -c "DROP EXTENSION coupon_lock_router CASCADE" \
          -c "DROP EXTENSION plproxy CASCADE" \
          -c "SELECT count(*) FROM pg_extension WHERE extname IN ('coupon_lock_router', 'plproxy')" 2>&1)
pv_check "DROP EXTENSION coupon_lock_router leaves the router database clean ($out)" test "$out" = 0
CL_PGBIN=$SYSBIN cl_pg_stop deb
pv_check "the cluster stopped" test ! -f "$CL_ROOT/tmp/deb/pg/postmaster.pid"

if cl_as_root dpkg --purge "$PKG" >"$DEB/purge.log" 2>&1; then pv_ok "dpkg --purge $PKG"
else pv_fail "dpkg --purge $PKG"; cat "$DEB/purge.log"; fi
left=$(while read -r f; do [ -e "$f" ] && echo "$f"; done <"$DEB/files.txt")
pv_check "the purge removed every file of the package" test -z "$left" || echo "$left"
pv_check "and $PKG is no longer known to dpkg" test -z "$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -v 'not-installed')"
if [ "$saved" -gt 0 ]; then
    while read -r f; do
        cl_as_root cp -p "$DEB/saved.$(basename "$f")" "$f"
    done <"$DEB/saved.txt"
    back=$(while read -r f; do cmp -s "$f" "$DEB/saved.$(basename "$f")" && echo "$f"; done <"$DEB/saved.txt" | wc -l)
    pv_check "the $saved files of the extension the system had before are back, byte for byte ($back)" test "$back" = "$saved"
fi
dirs_state >"$DEB/dirs_after.txt"
pv_check "the folders the package installed into have the modes and owners they had ($(wc -l <"$DEB/dirs_before.txt") folders)" \
    cmp -s "$DEB/dirs_before.txt" "$DEB/dirs_after.txt" || diff "$DEB/dirs_before.txt" "$DEB/dirs_after.txt"
rm -rf "$CL_ROOT/tmp/deb"
pv_done deb
