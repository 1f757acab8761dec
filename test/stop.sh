#!/usr/bin/env bash
# Stops the throwaway PostgreSQL and Redis of test/demo.sh (or of another NAME
# under tmp/): test/stop.sh [demo|test|bench]
set -eu
. "$(dirname "$0")/lib.sh"
name=${1:-demo}
cl_pg_stop "$name"
cl_redis_stop "$name"
echo "stopped what runs under tmp/$name"
