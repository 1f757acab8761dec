-- The same with core advisory locks on a 64-bit hash of the text key.
\set r random(1, 100000)
SELECT pg_advisory_lock(hashtextextended('k' || :client_id || ':' || :r, 0));
SELECT pg_advisory_unlock(hashtextextended('k' || :client_id || ':' || :r, 0));
