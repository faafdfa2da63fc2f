#!/usr/bin/env bash
# Measures the gas of ProofOfCompute's recording calls on a real EVM (anvil, hardfork paris).
#
#   contracts/scripts/measure-gas.sh            (after `npm ci` in tools/ and `npm run build` in contracts/)
#
# Starts its own anvil on 127.0.0.1:$PORT (default 8599, chain id 551), deploys the committed artifact
# from anvil's first dev account with a legacy transaction, grants DISPATCHER_ROLE to that account, then
# reports gasUsed (from receipts) for:
#   recordCompute  very first credit (totalUnits 0 -> 1), first credit of a new provider, repeat credit
#   recordBatch    100 completions over 10 distinct providers (10 units each), first credit (fresh
#                  providers) and steady state (providers already credited); per completion = gasUsed/100
# Exits 1 if the steady-state batch costs more than $TARGET gas per completion (default 1500).
# anvil is stopped by PID on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONTRACTS="$(dirname "$HERE")"
REPO="$(dirname "$CONTRACTS")"
TOOLS="$REPO/tools/node_modules/@foundry-rs"
ANVIL="$TOOLS/anvil-linux-amd64/bin/anvil"
CAST="$TOOLS/cast-linux-amd64/bin/cast"
ARTIFACT="$CONTRACTS/artifacts/ProofOfCompute.json"

PORT="${PORT:-8599}"
CHAIN_ID="${CHAIN_ID:-551}"
TARGET="${TARGET:-1500}"
RPC="http://127.0.0.1:$PORT"
# anvil's first well-known dev account (public test key, funded only on local dev chains).
PK=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80

for bin in "$ANVIL" "$CAST"; do
  [[ -x "$bin" ]] || { echo "missing $bin: run 'npm ci' in $REPO/tools" >&2; exit 1; }
done
[[ -f "$ARTIFACT" ]] || { echo "missing $ARTIFACT: run 'npm run build' in $CONTRACTS" >&2; exit 1; }

WORK="$(mktemp -d)"
ANVIL_PID=""
cleanup() {
  if [[ -n "$ANVIL_PID" ]] && kill -0 "$ANVIL_PID" 2>/dev/null; then
    kill "$ANVIL_PID" 2>/dev/null || true
    wait "$ANVIL_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ANVIL" --hardfork paris --port "$PORT" --chain-id "$CHAIN_ID" --host 127.0.0.1 >"$WORK/anvil.log" 2>&1 &
ANVIL_PID=$!
for _ in $(seq 1 100); do
  if "$CAST" chain-id --rpc-url "$RPC" >/dev/null 2>&1; then break; fi
  kill -0 "$ANVIL_PID" 2>/dev/null || { echo "anvil exited:" >&2; cat "$WORK/anvil.log" >&2; exit 1; }
  sleep 0.1
done
"$CAST" chain-id --rpc-url "$RPC" >/dev/null || { echo "anvil did not answer on $RPC" >&2; exit 1; }

# json_field FILE KEY: prints a top-level field of a JSON receipt, hex quantities as decimal.
json_field() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const v = r[process.argv[2]];
    console.log(typeof v === "string" && /^0x[0-9a-f]+$/i.test(v) && v.length <= 18 ? BigInt(v).toString() : v);
  ' "$1" "$2"
}

# send NAME ARGS...: sends a legacy transaction, checks success, leaves the receipt in $WORK/NAME.json.
send() {
  local name="$1"; shift
  "$CAST" send --legacy --json --private-key "$PK" --rpc-url "$RPC" "$@" >"$WORK/$name.json"
  [[ "$(json_field "$WORK/$name.json" status)" == "1" ]] || { echo "$name failed" >&2; cat "$WORK/$name.json" >&2; exit 1; }
}

# addr SEED: a deterministic, realistic (high-entropy) address.
addr() { "$CAST" to-check-sum-address "0x$("$CAST" keccak "$1" | cut -c27-66)"; }

DEPLOYER="$("$CAST" wallet address --private-key "$PK")"
BYTECODE="$(node -e 'console.log(require(process.argv[1]).bytecode)' "$ARTIFACT")"

send deploy --create "$BYTECODE"
C="$(json_field "$WORK/deploy.json" contractAddress)"
ROLE="$("$CAST" keccak DISPATCHER_ROLE)"
send grant "$C" "grantRole(bytes32,address)" "$ROLE" "$DEPLOYER"

# The very first credit also turns totalUnits from zero to non-zero (a fresh slot); measure it apart.
send compute_genesis "$C" "recordCompute(address)" "$(addr genesis-provider)"
P0="$(addr single-provider)"
send compute_first "$C" "recordCompute(address)" "$P0"
send compute_repeat "$C" "recordCompute(address)" "$P0"

PROVIDERS=""; UNITS=""
for i in $(seq 1 10); do
  PROVIDERS+="${PROVIDERS:+,}$(addr "provider-$i")"
  UNITS+="${UNITS:+,}10"
done
SIG="recordBatch(bytes32,bytes32,address[],uint256[])"
send batch_first "$C" "$SIG" "$("$CAST" keccak batch-1)" "$("$CAST" keccak root-1)" "[$PROVIDERS]" "[$UNITS]"
send batch_steady "$C" "$SIG" "$("$CAST" keccak batch-2)" "$("$CAST" keccak root-2)" "[$PROVIDERS]" "[$UNITS]"

# Sanity: state after the run (3 single credits, 2 x 100 batched).
total="$("$CAST" call "$C" "totalSupply()(uint256)" --rpc-url "$RPC")"
bal="$("$CAST" call "$C" "balanceOf(address)(uint256)" "$(addr provider-1)" --rpc-url "$RPC")"
[[ "$total" == "203" && "$bal" == "20" ]] || { echo "unexpected state: totalSupply=$total balanceOf(provider-1)=$bal" >&2; exit 1; }

g() { json_field "$WORK/$1.json" gasUsed; }
printf 'ProofOfCompute gas (anvil %s, hardfork paris, %s)\n' \
  "$("$ANVIL" --version | head -1 | awk '{print $3}')" "$(node -e 'console.log(require(process.argv[1]).compiler)' "$ARTIFACT")"
printf '  %-52s %9s\n' "deploy" "$(g deploy)"
printf '  %-52s %9s\n' "recordCompute, very first credit (totalUnits 0->1)" "$(g compute_genesis)"
printf '  %-52s %9s\n' "recordCompute, first credit (new provider)" "$(g compute_first)"
printf '  %-52s %9s\n' "recordCompute, repeat credit" "$(g compute_repeat)"
for k in first steady; do
  gas="$(g "batch_$k")"
  label="recordBatch 100 compl./10 providers, $k"
  [[ "$k" == first ]] && label+=" credit" || label+=" state"
  printf '  %-52s %9s  (%s per completion)\n' "$label" "$gas" "$(node -e 'console.log((+process.argv[1]/100).toFixed(2))' "$gas")"
done

steady="$(g batch_steady)"
if (( steady > TARGET * 100 )); then
  echo "FAIL: steady-state recordBatch costs $((steady / 100)) gas per completion, above the target $TARGET" >&2
  exit 1
fi
echo "OK: steady-state recordBatch within the target of $TARGET gas per completion"
