-- coupon_lock install script: versions (src/version.c)

CREATE FUNCTION coupon_lock.library_version()
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_library_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION coupon_lock.library_version() IS
    'version of the loaded coupon_lock library; pg_extension.extversion is the version of the SQL objects, older until ALTER EXTENSION coupon_lock UPDATE';
REVOKE ALL ON FUNCTION coupon_lock.library_version() FROM PUBLIC;
