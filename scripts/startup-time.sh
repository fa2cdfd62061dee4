#!/bin/bash
# CLI start-up as docs/performance.md measures it: p50 (min, max) wall ms of `cxlog topics`
# against a running head, RUNS times after one warming run, from the built tree DIR.
# usage: bash scripts/startup-time.sh [DIR] [NODE] [RUNS]
dir=${1:-.}; node=${2:-node}; runs=${3:-20}
region=cxlog-su-$$-$RANDOM
cd $dir
CXLOG_REGION=$region $node dist/cxlog.mjs head --topic t > /dev/null 2>&1 &
hp=$!
for i in $(seq 1 50); do CXLOG_REGION=$region $node dist/cxlog.mjs topics > /dev/null 2>&1 && break; sleep 0.2; done
CXLOG_REGION=$region $node dist/cxlog.mjs topics > /dev/null 2>&1
ts=()
for i in $(seq 1 $runs); do
  s=$(date +%s%N); CXLOG_REGION=$region $node dist/cxlog.mjs topics > /dev/null 2>&1; e=$(date +%s%N)
  ts+=($(( (e-s)/1000000 )))
done
kill $hp; wait $hp 2>/dev/null
rm -f /dev/shm/$region
printf "%s\n" "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {print "p50", a[int((NR+1)/2)], "min", a[1], "max", a[NR]}'
