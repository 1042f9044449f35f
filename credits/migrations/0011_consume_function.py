"""The common case of a consumption as a PL/pgSQL function (`credits.hot_path.consume`).

It replaces two statements in a pipeline (the account lock, then one statement of data-modifying
CTEs) with one call: one round trip and one statement on the Python side, and on the server plain
statements whose plans the function keeps for the session instead of a tree of materialized CTEs.
Measured with pgbench at 8 clients across 1,000 organizations: 3,190 to 3,560 consumptions/s for
the pipeline, 3,730 to 3,860 for the function.

What it does, and when it answers no row (having written nothing, so the caller's general path,
`credits.services.ledger.Ledger`, decides under its own lock), is the pipeline's, unchanged:
lock the account; answer nothing without one, or when the consumption would go past the
overdraft limit, arm or re-arm the low-balance alert, start an auto-refill (all on the available
balance: balance - held), or when a live grant is due to expire; else draw from the live grants
in the order given (the sources in `p_order`, others after them; then soonest expiry, never
expiring last; then oldest; then id), update them and the account and append the ledger row.

In READ COMMITTED every statement of a VOLATILE function takes a new snapshot, so the grants are
read after the account lock is held, as the pipeline's second statement read them.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION credits_consume_common(
    p_organization uuid, p_required numeric, p_now timestamptz, p_order text[], p_id uuid,
    p_reason text, p_event_name text, p_quantity numeric, p_metadata jsonb, p_actor text,
    p_key text, p_fingerprint text)
RETURNS TABLE (r_account bigint, r_sequence bigint, r_balance numeric, r_allocations jsonb)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    acct record;
    after numeric;
    available numeric;
    need numeric := p_required;
    g record;
    took numeric;
    allocations jsonb := '[]';
BEGIN
    SELECT a.id, a.balance, a.held, a.overdraft_limit, a.low_balance_threshold,
           a.low_balance_alerted_at, a.sequence
      INTO acct
      FROM credits_creditaccount a WHERE a.organization_id = p_organization FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    after := acct.balance - p_required;
    available := after - acct.held;
    IF available < -acct.overdraft_limit
       OR (acct.low_balance_threshold IS NOT NULL
           AND (available < acct.low_balance_threshold) <> (acct.low_balance_alerted_at IS NOT NULL))
       OR EXISTS (SELECT 1 FROM credits_autorefill r
                  WHERE r.account_id = acct.id AND r.enabled AND available < r.threshold)
       OR EXISTS (SELECT 1 FROM credits_creditgrant x
                  WHERE x.account_id = acct.id AND x.remaining > 0 AND x.expires_at <= p_now)
    THEN
        RETURN;
    END IF;
    FOR g IN
        SELECT x.id, x.remaining FROM credits_creditgrant x
        WHERE x.account_id = acct.id AND x.remaining > 0
        ORDER BY coalesce(array_position(p_order, x.source::text), cardinality(p_order) + 1),
                 x.expires_at ASC NULLS LAST, x.created_at, x.id
    LOOP
        EXIT WHEN need <= 0;
        took := least(g.remaining, need);
        UPDATE credits_creditgrant SET remaining = remaining - took WHERE id = g.id;
        allocations := allocations || jsonb_build_array(jsonb_build_array(g.id::text, trim_scale(took)::text));
        need := need - took;
    END LOOP;
    UPDATE credits_creditaccount
       SET balance = after, sequence = acct.sequence + 1, updated_at = p_now
     WHERE id = acct.id;
    INSERT INTO credits_credittransaction (id, organization_id, account_id, sequence, kind, amount,
        balance_after, grant_id, allocations, reverses_id, reason, event_name, quantity, metadata,
        actor, idempotency_key, request_fingerprint, created_at)
    VALUES (p_id, p_organization, acct.id, acct.sequence + 1, 'consume', -p_required, after, NULL,
        allocations, NULL, p_reason, p_event_name, p_quantity, p_metadata, p_actor, p_key,
        p_fingerprint, p_now);
    r_account := acct.id;
    r_sequence := acct.sequence + 1;
    r_balance := after;
    r_allocations := allocations;
    RETURN NEXT;
END
$fn$;
"""

DROP = """
DROP FUNCTION IF EXISTS credits_consume_common(uuid, numeric, timestamptz, text[], uuid, text, text,
    numeric, jsonb, text, text, text);
"""


class Migration(migrations.Migration):
    dependencies = [("credits", "0010_consume_window_index")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
