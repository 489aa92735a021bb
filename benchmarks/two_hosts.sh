#!/usr/bin/env bash
# Two hosts for real (docs/scale.md): two network namespaces joined by a veth pair, one rank of
# `latentspectra basis` in each with torchrun's rendezvous across the link, and the basis compared with the
# one of a single process. Needs root and iproute2; prints "two_hosts: skipped: REASON" and exits 0 where it
# cannot make the namespaces, exits 1 when the bases differ or the run fails. Cleans up after itself.
#   sudo benchmarks/two_hosts.sh [V]      # V per set, default 50
set -euo pipefail
per_set=${1:-50}
skip() { echo "two_hosts: skipped: $1"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip >/dev/null || skip "no ip command (install iproute2)"
tag=$$
first=ls30a$tag second=ls30b$tag work=$(mktemp -d)
cleanup() {
    ip netns del "$first" 2>/dev/null || true
    ip netns del "$second" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$first" 2>/dev/null || skip "the kernel refuses network namespaces here"
ip netns add "$second"
ip link add "va$tag" type veth peer name "vb$tag" 2>/dev/null || skip "the kernel refuses veth pairs here"
ip link set "va$tag" netns "$first"
ip link set "vb$tag" netns "$second"
ip -n "$first" addr add 10.30.0.1/24 dev "va$tag"
ip -n "$second" addr add 10.30.0.2/24 dev "vb$tag"
for namespace in "$first" "$second"; do
    ip -n "$namespace" link set lo up
done
ip -n "$first" link set "va$tag" up
ip -n "$second" link set "vb$tag" up

basis=(-m latentspectra basis --per-set "$per_set" --device cpu --precision float32 --quiet --json)
export OMP_NUM_THREADS=1 LATENTSPECTRA_DIST_TIMEOUT=120
python3 "${basis[@]}" --out "$work/one.safetensors" > "$work/one.out"
host() {  # NAMESPACE ADDRESS INTERFACE IS_HOST: one node of two, one rank, rendezvous at 10.30.0.1
    ip netns exec "$1" env GLOO_SOCKET_IFNAME="$3" timeout 600 python3 -m torch.distributed.run --nnodes 2 \
        --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint 10.30.0.1:29430 --rdzv-id "ls30-$tag" \
        --rdzv-conf "is_host=$4" --local-addr "$2" "${basis[@]}" --out "$work/two.safetensors"
}
host "$first" 10.30.0.1 "va$tag" true > "$work/first.out" 2> "$work/first.err" &
started=$!
host "$second" 10.30.0.2 "vb$tag" false > "$work/second.out" 2> "$work/second.err" || {
    cat "$work/second.err" >&2; exit 1; }
wait "$started" || { cat "$work/first.err" >&2; exit 1; }
python3 - "$work" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
work = Path(sys.argv[1])
record = json.loads((work / "first.out").read_text() or (work / "second.out").read_text())  # rank 0's
one, two = load_file(work / "one.safetensors"), load_file(work / "two.safetensors")
difference = (one["vectors"] - two["vectors"]).abs().max().item()
single = json.loads((work / "one.out").read_text())
same = difference <= 1e-12 and record["draws_per_set"] == single["draws_per_set"] and record["world_size"] == 2
print(f"two_hosts: 2 ranks over a veth pair (10.30.0.1 <-> 10.30.0.2): world_size {record['world_size']}, "
      f"{record['samples_drawn']:,} latents drawn, largest difference from one process {difference:.1e}: "
      + ("same basis" if same else "DIFFERENT"))
sys.exit(0 if same else 1)
PY
