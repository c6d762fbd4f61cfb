#!/usr/bin/env bash
# A/B of two engine_bench builds on the prefill alone: the two binaries take turns, ROUNDS times; each
# run is `--profile-prefill --reps 9` and gives its median tokens/s. Prints each round (a, b, b/a), sorted,
# and the median ratio. Run it twice, swapping OLD and NEW, to cancel an order effect on a noisy machine.
#
#   bench/ab_prefill.sh /tmp/engine_bench_old build/bench/engine_bench 8
set -euo pipefail
old=$1 new=$2 rounds=${3:-8}
run_median() { "$1" --profile-prefill --reps 9 2>/dev/null | awk '/^prefill/{print $2}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for _ in $(seq "$rounds"); do
  a=$(run_median "$old")
  b=$(run_median "$new")
  awk -v a="$a" -v b="$b" 'BEGIN{printf "%s %s %.3f\n", a, b, b / a}'
done | sort -k3 -n | awk '{r[NR]=$3; print} END{print "median ratio (new/old)", r[int((NR+1)/2)]}'
