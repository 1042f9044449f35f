#!/bin/bash
# Usage: `PORT=8101 STRIPE_EMULATOR_PORT=12201 make run` in one shell, then
# `BASE=http://127.0.0.1:8101 tests/hardening/probe_make_run.sh`: every line must say OK, the state unchanged.
# Outside probe of issue 17 Found 1-4, 8, 9 against a running `make run` on $BASE.
BASE=${BASE:-http://127.0.0.1:8101}
cd "$(dirname "$0")/../.."
PK=$(.venv/bin/python manage.py create_platform_key probe --scope credits:grant --scope credits:consume --scope usage:write --scope organizations:read 2>/dev/null | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
ORGJSON=$(.venv/bin/python manage.py create_organization "Probe $RANDOM" --owner-email probe$RANDOM@example.com --api-key 2>/dev/null | tail -1)
ORG=$(echo "$ORGJSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["organization_id"])')
OK=$(echo "$ORGJSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
U=$BASE/api/v1/organizations/$ORG
pass=0; fail=0
state() { curl -s -H "Authorization: Bearer $PK" $U/credits | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["balance"], d["auto_refill"]["enabled"])'; echo -n " txns="; curl -s -H "Authorization: Bearer $PK" "$U/credits/transactions?page_size=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
check() { # name, expected status prefix, curl args...
  local name=$1 want=$2; shift 2
  local out; out=$(curl -s -o ${TMPDIR:-/tmp}/probe_probe_body -w '%{http_code} %{content_type}' "$@")
  local code=${out%% *} ctype=${out#* }
  # (the body's path goes in as an argument: inside single quotes the shell expands nothing)
  local shape; shape=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("shape-ok" if isinstance(d.get("error"),str) and isinstance(d.get("message"),str) else "BAD-SHAPE")' "${TMPDIR:-/tmp}/probe_probe_body" 2>/dev/null || echo "NOT-JSON")
  if [[ $code == $want* && $shape == shape-ok ]]; then pass=$((pass+1)); r=OK; else fail=$((fail+1)); r=FAIL; fi
  printf '%-4s %-58s %s %s %s\n' "$r" "$name" "$code" "$shape" "$(head -c 140 ${TMPDIR:-/tmp}/probe_probe_body)"
}
J=(-H "Content-Type: application/json")
curl -s -o /dev/null -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant -d '{"amount": "100", "reason": "probe seed", "idempotency_key": "seed"}'
BEFORE=$(state); echo "before: $BEFORE"
for n in '"1e3"' '1e3' '1E+2' '"1_000"' '"١٢"' '"１２"' '"NaN"' '"Infinity"' '1e400' '"999999999999999999999999999999"' '"0.00001"' '"12345678901234567"'; do
  check "consume amount=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary "{\"amount\": $n, \"idempotency_key\": \"p-$RANDOM\"}"
  check "grant amount=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant --data-binary "{\"amount\": $n, \"reason\": \"r\", \"idempotency_key\": \"g-$RANDOM\"}"
  check "usage/track quantity=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/usage/track --data-binary "{\"metric\": \"SMS_SENT\", \"quantity\": $n, \"idempotency_key\": \"t-$RANDOM\"}"
  check "usage/reservations estimated_quantity=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/usage/reservations --data-binary "{\"metric\": \"SMS_SENT\", \"estimated_quantity\": $n, \"idempotency_key\": \"r-$RANDOM\"}"
  check "usage/cost-estimate quantity=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/usage/cost-estimate --data-binary "{\"metric\": \"SMS_SENT\", \"quantity\": $n}"
  check "auto-refill threshold=$n" 400 -X PUT "${J[@]}" -H "Authorization: Bearer $OK" $U/credits/auto-refill --data-binary "{\"enabled\": false, \"threshold\": $n}"
  check "low-balance threshold=$n" 400 -X PUT "${J[@]}" -H "Authorization: Bearer $OK" $U/credits/low-balance --data-binary "{\"threshold\": $n}"
  check "payment-links amount=$n" 400 -X POST "${J[@]}" -H "Authorization: Bearer $OK" $U/payment-links --data-binary "{\"description\": \"x\", \"amount\": $n, \"currency\": \"usd\", \"days_until_due\": 7}"
done
EV=$(curl -s -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/usage/events --data-binary '{"events": [{"metric": "SMS_SENT", "quantity": "1e3", "idempotency_key": "ev1"}, {"metric": "SMS_SENT", "quantity": "1_0", "idempotency_key": "ev2"}]}')
echo "usage/events bad quantities -> $EV"
check "grant that would overflow the balance" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant -d '{"amount": "9999999999999999", "reason": "overflow", "idempotency_key": "of"}'
check "consume metadata NUL" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary '{"amount": 1, "idempotency_key": "n1", "metadata": {"k": "a\u0000b"}}'
check "consume reason lone surrogate" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary '{"amount": 1, "idempotency_key": "n2", "reason": "\ud800"}'
check "grant metadata key NUL" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant --data-binary '{"amount": 1, "reason": "r", "idempotency_key": "n3", "metadata": {"a\u0000": 1}}'
check "payment-links description NUL" 400 -X POST "${J[@]}" -H "Authorization: Bearer $OK" $U/payment-links --data-binary '{"description": "a\u0000", "amount": 100, "currency": "usd", "days_until_due": 7}'
python3 -c 'import json; print(json.dumps({"amount": 1, "idempotency_key": "m1", "metadata": {f"k{i}": "v" for i in range(51)}}))' > ${TMPDIR:-/tmp}/probe_m51.json
check "consume metadata 51 keys" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary @${TMPDIR:-/tmp}/probe_m51.json
python3 -c 'import json; print(json.dumps({"amount": 1, "reason": "r", "idempotency_key": "m2", "metadata": {"k": "x" * 2000000}}))' > ${TMPDIR:-/tmp}/probe_mbig.json
check "grant metadata 2 MB value" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant --data-binary @${TMPDIR:-/tmp}/probe_mbig.json
check "reservation metadata nested" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/usage/reservations --data-binary '{"metric": "SMS_SENT", "estimated_quantity": 1, "idempotency_key": "m3", "metadata": {"a": {"b": 1}}}'
python3 -c 'print("{\"amount\": 1, \"idempotency_key\": \"big\", \"reason\": \"" + "x" * 3000000 + "\"}")' > ${TMPDIR:-/tmp}/probe_big.json
check "body of 3 MB" 413 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary @${TMPDIR:-/tmp}/probe_big.json
python3 -c 'print("{\"amount\": 1, \"idempotency_key\": \"deep\", \"metadata\": {\"k\": " + "[" * 100000 + "]" * 100000 + "}}")' > ${TMPDIR:-/tmp}/probe_deep.json
check "JSON nested 100,000 deep" 400 -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/consume --data-binary @${TMPDIR:-/tmp}/probe_deep.json
check "auto-refill amount over Stripe's max" 400 -X PUT "${J[@]}" -H "Authorization: Bearer $OK" $U/credits/auto-refill -d '{"enabled": true, "threshold": "50", "amount": "1000000000", "payment_method": "pm_card_visa"}'
PACK=$(curl -s $BASE/api/v1/credit-packs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["code"])')
for card in pm_does_not_exist tok_visa card_123; do
  check "purchase with card $card" 4 -X POST "${J[@]}" -H "Authorization: Bearer $OK" $U/credits/purchase -d "{\"pack\": \"$PACK\", \"payment_method\": \"$card\", \"idempotency_key\": \"buy-1\"}"
done
check "unmatched /api/nope" 404 $BASE/api/nope
check "unmatched POST /api/v1/nope" 404 -X POST $BASE/api/v1/nope
AFTER=$(state); echo "after:  $AFTER"
[[ "$BEFORE" == "$AFTER" ]] && echo "STATE UNCHANGED" || echo "STATE CHANGED"
G1=$(curl -s -D - -o /dev/null -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant -d '{"amount": "1", "reason": "replay", "idempotency_key": "rp"}' | grep -i "^HTTP\|idempotent")
G2=$(curl -s -D - -o /dev/null -X POST "${J[@]}" -H "Authorization: Bearer $PK" $U/credits/grant -d '{"amount": "1", "reason": "replay", "idempotency_key": "rp"}' | grep -i "^HTTP\|idempotent")
echo "grant first: $G1 / replay: $G2" | tr -d '\r' | tr '\n' ' '; echo
echo "purchases in flight: $(.venv/bin/python manage.py shell -c "from credits.models import CreditPurchase; print(CreditPurchase.objects.filter(organization_id='$ORG').count())" 2>/dev/null)"
echo "RESULT: $pass passed, $fail failed"
