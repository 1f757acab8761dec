-- coupon_lock upgrade script from 1.0 to 1.1, assembled by the Makefile from
-- versions/coupon_lock--1.0--1.1/*.sql in file-name order.
\echo Use "ALTER EXTENSION coupon_lock UPDATE TO '1.1'" to load this file. \quit
